"""Operator-signed tokens in front of the services that move the robot or change the controller
(``security.restrict_commands``): the service side (``CommandGuard``) and the caller side
(``CommandCaller``). The keys and the token format live in ROS-free ``robot_rl/security.py``."""
from __future__ import annotations

import time
from typing import Callable

from rclpy.node import Node

from robot_rl.config import Config


class CommandGuard:
    """Restricts a node's Trigger services to calls announced by an operator-signed token
    (``security.restrict_commands``; ``robot_rl.security.CommandGate``). Off: services are
    wrapped by nothing. DDS itself cannot tell a service who called it (the request carries
    only the client's writer GUID, and node names are self-declared), hence the token."""

    def __init__(self, node: Node, cfg: Config):
        from robot_rl import security
        self.node, self.gate = node, None
        if not cfg.security.restrict_commands:
            return
        if not cfg.security.keystore:
            raise security.SecurityError("security.restrict_commands needs security.keystore "
                                         "(its operator keys may call the restricted services)")
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String
        from robot_rl.ros.messages import SCENE_RESET
        self.gate = security.CommandGate(security.Keyring.load(cfg.security.keystore),
                                         cfg.security.command_max_age_s,
                                         actor_services=[SCENE_RESET, cfg.hil.reset.service])
        node.create_subscription(String, security.COMMAND_TOKEN_TOPIC, self._on_token,
                                 QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))

    def _on_token(self, msg) -> None:
        reason = self.gate.offer(msg.data)
        if reason is not None:
            self.node.get_logger().warning(f"refused a command token ({reason}); refused so far "
                                           f"{dict(self.gate.refused)}", throttle_duration_sec=1.0)

    def wrap(self, service: str, callback: Callable):
        if self.gate is None:
            return callback

        def guarded(request, response):
            ok, why = self.gate.authorize(service)
            if not ok:
                self.node.get_logger().warning(f"refused a call of {service}: no valid token",
                                               throttle_duration_sec=1.0)
                response.success, response.message = False, why
                return response
            return callback(request, response)

        return guarded


class CommandCaller:
    """Client side of CommandGuard: with ``security.restrict_commands``, announces each call of
    a restricted service with a token signed by this node's key (an actor's resets)."""

    def __init__(self, node: Node, cfg: Config, key_name: str):
        from robot_rl import security
        self.signer = None
        if not (cfg.security.restrict_commands and cfg.security.keystore):
            return
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String
        self.signer = security.Signer.load(cfg.security.keystore, key_name)
        self._string = String
        self.pub = node.create_publisher(String, security.COMMAND_TOKEN_TOPIC,
                                         QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))

    def announce(self, service: str, match_timeout: float = 1.0) -> None:
        if self.signer is None:
            return
        from robot_rl import security
        deadline = time.monotonic() + match_timeout
        while self.pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # the service's token reader has not matched yet
        self.pub.publish(self._string(data=security.command_token(self.signer, service)))
        time.sleep(0.02)  # the token and the call travel on separate writers
