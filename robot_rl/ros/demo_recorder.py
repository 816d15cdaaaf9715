"""``robot-rl record-demos``: the entry point, and the ROS side of recording a person's
demonstrations over the running graph (``--device spacemouse|gamepad|joy|keyboard|sim-human``).

``--device scripted`` (the default) is robot_rl/learning/record_demos.py's scripted expert. With
a device, the graph must run with the same configuration::

    robot-rl up --profile demos --config my.yaml --set hil.device=gamepad
    robot-rl record-demos --device gamepad --config my.yaml --out demos/mine --episodes 20

Buttons (the intervention node's ``/intervention/action`` contract, whatever the device): hold
the dead-man (``buttons[0]``; LB on a pad) to start an episode; the success button
(``buttons[2]``; Y on a pad) or the task's reward source (the env's ``info["success"]``) ends it
kept; the failure button (``buttons[3]``) ends it discarded. Episodes that were not kept go to
``<out>.rejected``. The episode logic is ROS-free (``TeleopRecorder``); here are the
subscriptions and the command line.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any, Dict, Optional, Sequence, Tuple

from robot_rl.config import Config, load_config
from robot_rl.learning.record_demos import (HUMAN_DEVICES, HumanCommand, RecordingError,
                                            TeleopRecorder, human_command)


class HumanInput:
    """The person's newest command and the intervention node's health, received on ``node``."""

    def __init__(self, node, cfg: Config, action_dim: int):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Joy

        from robot_rl.ros import messages as m
        from robot_rl.ros.diagnostics_topic import DIAGNOSTICS
        self.action_dim = action_dim
        self.topic = cfg.hil.topic
        self._changed = threading.Condition()
        self.latest: Optional[HumanCommand] = None
        self.rejected = 0
        self.intervention_health: Optional[Tuple[str, Dict[str, str]]] = None
        node.create_subscription(Joy, cfg.hil.topic, self._on_joy, m.INTERVENTION_QOS)
        node.create_subscription(DiagnosticArray, DIAGNOSTICS, self._on_diagnostics, 10)

    def _on_joy(self, msg) -> None:
        try:
            cmd = human_command(msg.axes, msg.buttons, self.action_dim, time.monotonic())
        except ValueError:
            self.rejected += 1
            return
        with self._changed:
            self.latest = cmd
            self._changed.notify_all()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith(": intervention"):
                self.intervention_health = (status.message,
                                            {kv.key: kv.value for kv in status.values})

    def wait(self, predicate, timeout: float) -> Optional[HumanCommand]:
        """The newest command once ``predicate(cmd)`` holds, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.latest is not None and predicate(self.latest)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(min(remaining, 0.1))
            return self.latest




def record_teleop(cfg: Config, out: str, episodes: int, device: str, seed: int = 0,
                  start_timeout: float = 60.0, device_timeout: float = 10.0,
                  max_attempts: Optional[int] = None, verbose: bool = True) -> Dict[str, Any]:
    """Record ``episodes`` successful teleoperated episodes over the running graph into ``out``;
    the others go to ``<out>.rejected``. Raises RecordingError (device/graph missing) or
    RuntimeError (no success within ``max_attempts``) after writing what was recorded."""
    from robot_rl.envs.ros_env import ObservationTimeout, RosRobotEnv
    from robot_rl.learning.demos import record_episodes

    if episodes <= 0:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    rejected_out = out.rstrip("/") + ".rejected"
    # Only the plain stand-in publishes the object pose; hardware and the rehearsal do not.
    privileged = cfg.driver.adapter == "sim" and not cfg.sim.rehearsal
    try:
        env = RosRobotEnv(cfg, node_name="record_demos", use_object_pose=privileged,
                          timeout=10.0, startup_timeout=device_timeout + 20.0)
    except ObservationTimeout as exc:
        raise RecordingError(f"the robot is not running: {exc}") from None
    try:
        human = HumanInput(env.node, cfg, int(env.action_space.shape[0]))
        recorder = TeleopRecorder(env, human, cfg, device, start_timeout, device_timeout,
                                  verbose)
        recorder.check_device()
        rec = record_episodes(env, lambda obs: None, episodes, out=out, seed=seed,
                              max_attempts=max_attempts, verbose=verbose,
                              run_episode=recorder, rejected_out=rejected_out)
    finally:
        env.close()
    return {"out": out, "episodes": len(rec.episode_lengths), "attempts": rec.attempts,
            "transitions": rec.transitions, "wall_s": rec.wall_s,
            "discarded": recorder.discarded, "rejected_out": rejected_out}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from robot_rl.cli import parse_sets
    from robot_rl.learning import record_demos
    from robot_rl.schema import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--device", default="scripted", choices=("scripted",) + HUMAN_DEVICES)
    known, _ = pre.parse_known_args(argv)
    if known.device == "scripted" and not any(a in ("-h", "--help") for a in argv):
        return record_demos.main([a for a in argv if a not in ("--device", "scripted")
                                  and a != "--device=scripted"])
    p = argparse.ArgumentParser(
        prog="robot-rl record-demos",
        description="Record demonstrations: the scripted expert (--device scripted, see "
                    "`python -m robot_rl.learning.record_demos --help`), or a person's device "
                    "over the running graph (start it: robot-rl up --profile demos).")
    p.add_argument("--device", default="scripted", choices=("scripted",) + HUMAN_DEVICES)
    p.add_argument("--out", required=True, help="new replay directory to write")
    p.add_argument("--episodes", type=int, default=20, help="successful episodes to keep")
    p.add_argument("--config", default="", help="YAML configuration (the graph's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-timeout", type=float, default=60.0,
                   help="s to wait for the dead-man after each reset")
    p.add_argument("--device-timeout", type=float, default=10.0,
                   help="s to wait for the intervention node's first message")
    p.add_argument("--max-attempts", type=int, default=0,
                   help="episodes to try before giving up (0: 3 x episodes + 5)")
    args = p.parse_args(argv)
    if args.episodes <= 0:
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    try:
        overrides = parse_sets(args.set)
        overrides["hil.device"] = args.device.replace("-", "_")
        cfg = load_config(args.config or None, overrides)
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        res = record_teleop(cfg, args.out, args.episodes, args.device, seed=args.seed,
                            start_timeout=args.start_timeout,
                            device_timeout=args.device_timeout,
                            max_attempts=args.max_attempts or None)
    except (ConfigError, FileExistsError, RuntimeError) as exc:  # RecordingError included
        print(f"[record-demos] error: {exc}", file=sys.stderr)
        return 2
    print(f"[record-demos] wrote {res['episodes']} demonstrations ({res['transitions']} "
          f"transitions, {res['attempts']} episodes, {res['discarded']} set aside in "
          f"{res['rejected_out']}, {res['wall_s']:.1f} s) to {res['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
