"""Evaluation of an exported policy through the controller node over DDS, against the sim graph.

Not the node itself (``robot_rl.ros.controller_node``): this starts the MuJoCo sim graph as
processes, a :class:`ControllerNode` in this process, and runs episodes through the node's
public core and snapshot. The in-process evaluation without ROS is
``robot_rl.deploy.evaluation.evaluate_deployed``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from std_srvs.srv import Trigger

from robot_rl.config import Config
from robot_rl.deploy.controller_core import reset_to_idle
from robot_rl.deploy.errors import IllegalTransitionError
from robot_rl.ros import messages as m
from robot_rl.ros.controller_node import ControllerNode

__all__ = ["evaluate_deployed_ros"]


def evaluate_deployed_ros(cfg: Config, model_path, episodes: int, work_dir=None, sim_rate: str = "realtime",
                          episode_timeout_s: float | None = None, record: str | None = None,
                          episode_log: list | None = None, figures: list | None = None) -> float:
    """Success rate of the exported model driving the MuJoCo sim process over DDS.

    Starts the sim graph (``robot_rl.graph``) as processes and a :class:`ControllerNode` in
    this process at ``cfg.control_rate_hz``; per episode: deactivate, ``/scene/reset``,
    engage, run until the task succeeds (cube pose from ``/sim/object_pose``) or
    ``task.max_episode_steps`` control periods pass. Needs ROS_DOMAIN_ID set by the caller.
    ``record``: an .mcap path; the graph then also runs the recorder (``cfg.recording``).
    ``episode_log``: a list that gets ``(outcome, robot seconds)`` per episode appended.
    ``figures``: a list that gets the controller's final figures line appended (latency,
    jitter, clamps: ``ControllerNode.stats_line``).
    """
    import tempfile
    from pathlib import Path

    from rclpy.executors import SingleThreadedExecutor

    from robot_rl.config import save_config
    from robot_rl.graph import graph, recorder_node
    from robot_rl.launcher import NodeGraph

    cfg = replace(cfg, sim=replace(cfg.sim, rate=sim_rate),
                  deploy=replace(cfg.deploy, model=str(model_path)))
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="robot_rl_eval_"))
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "config.yaml"
    save_config(cfg, cfg_path)
    owns = not rclpy.ok()
    if owns:
        rclpy.init()
    specs = graph(cfg, str(cfg_path)) + ([recorder_node(str(cfg_path), str(record))] if record else [])
    sim = NodeGraph(specs, log_dir=work / "logs").start()
    node = helper = executor = spin = None
    try:
        node = ControllerNode(cfg, name="controller_eval")
        helper = rclpy.create_node("controller_eval_helper")
        obj: dict[str, np.ndarray] = {}
        helper.create_subscription(PoseStamped, m.OBJECT_POSE,
                                   lambda msg: obj.__setitem__("pos", m.decode_input("object", msg, ())), m.SENSOR_QOS)
        reset = helper.create_client(Trigger, m.SCENE_RESET)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(helper)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        if not reset.wait_for_service(timeout_sec=60.0):
            raise TimeoutError(f"{m.SCENE_RESET} not available; sim log: {work / 'logs'}")
        period = 1.0 / cfg.control_rate_hz
        timeout = episode_timeout_s or cfg.task.max_episode_steps * period
        successes = 0
        for episode in range(episodes):
            _start_episode(node, reset, period)
            outcome, elapsed = _watch_episode(node, obj, timeout, period)
            successes += outcome == "success"
            if episode_log is not None:
                episode_log.append((outcome, elapsed))
            node.log.info(f"evaluation episode {episode + 1}/{episodes}: {outcome} after "
                          f"{elapsed if elapsed is not None else float('nan'):.1f} s robot time "
                          f"(cube at {np.round(obj.get('pos', np.full(3, np.nan)), 3).tolist()})")
        reset_to_idle(node.core)
        return successes / max(episodes, 1)
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if spin is not None:
            spin.join(timeout=2.0)
        if node is not None:
            if figures is not None:
                figures.append(f"{node.stats_line()} | phase locked {node.status_dict()['phase_locked']}")
            node.close()
            node.destroy_node()
        if helper is not None:
            helper.destroy_node()
        sim.stop()
        if owns:
            rclpy.try_shutdown()


def _start_episode(node: ControllerNode, reset, period: float) -> None:
    """Deactivate, reset the scene, let fresh sensor data arrive, engage (retrying while the
    layer refuses, e.g. inputs still stale after the reset)."""
    reset_to_idle(node.core)
    fut = reset.call_async(Trigger.Request())
    deadline = time.monotonic() + 30.0
    while not fut.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not fut.done() or not fut.result().success:
        raise RuntimeError("scene reset failed")
    time.sleep(5 * period)  # fresh sensor data after the reset
    deadline = time.monotonic() + 10.0
    while True:
        try:
            node.core.engage()
            return
        except IllegalTransitionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(period)


def _watch_episode(node: ControllerNode, obj: dict, timeout: float, period: float) -> tuple[str, float | None]:
    """("success" | "timeout", robot seconds elapsed). The limit is counted in robot (sim) time,
    as in training: a sim that falls behind the wall clock on a loaded machine must not cut
    episodes short."""
    start = elapsed = None
    wall_end = time.monotonic() + 3 * timeout + 10.0  # a stalled sim must not hang this
    while time.monotonic() < wall_end:
        snap, *_ = node.snapshot()
        if snap is not None and "pos" in obj:
            snap.object_pos = obj["pos"]
            start = snap.stamp if start is None else start
            elapsed = snap.stamp - start
            if node.core.task.success(snap):
                return "success", elapsed
            if elapsed >= timeout:
                break
        time.sleep(period / 2)
    return "timeout", elapsed
