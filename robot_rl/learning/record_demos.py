"""Record demonstrations in the replay on-disk format the learner reads (``learner.demos``).

``--device scripted`` (default): the scripted pick expert in the in-process ``PickCubeEnv``, or
over ROS 2 through ``RosRobotEnv`` (``--ros``, needs a running sim: the expert reads
``/sim/object_pose``); only successful episodes are kept, failed ones are discarded.

A person's device (``robot-rl record-demos --device spacemouse|gamepad|joy|keyboard|
sim-human``, robot_rl/ros/demo_recorder.py): the ROS-free episode logic lives here
(``TeleopRecorder``, ``teleop_action``, ``episode_outcome``): the recorder drives the robot
through ``RosRobotEnv`` with the person's command from ``/intervention/action``, exactly as an
actor applies an intervention. Each episode: the scene is reset (``/scene/reset``: on hardware
the reset node moves home and waits for the person to confirm the scene); the episode
**starts** when the person holds the dead-man (``buttons[0]``); steps while it is released keep
the arm where it is. It **ends kept** when the task's reward source reports success (the env's
``info["success"]``) or the person presses the success button (``buttons[2]``; with
``hil.reward.source: human`` the button is the source, held ``hil.reward.consecutive`` steps); it ends
**discarded** on the failure button (``buttons[3]``) or at ``task.max_episode_steps``.
Discarded episodes go to ``<out>.rejected`` in the same format: nothing recorded is lost.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from robot_rl.config import Config, load_config

HUMAN_DEVICES = ("spacemouse", "gamepad", "joy", "keyboard", "sim-human")


class ExpertPolicy:
    """The task's scripted expert as a policy callable: it plans from the env's ``snapshot``
    (simulator state, so recording with it needs the MuJoCo stand-in)."""

    def __init__(self, expert, env):
        self.expert, self.env = expert, env

    def reset(self) -> None:
        self.expert.reset()

    def __call__(self, obs) -> np.ndarray:
        return self.expert.act(self.env.snapshot)


def record(cfg: Config, out: str, episodes: int, env=None, seed: int = 0, noise: float = 0.05,
           max_attempts: Optional[int] = None, verbose: bool = True) -> Dict[str, Any]:
    """Write ``episodes`` successful expert episodes to ``out``; returns a summary."""
    from robot_rl.learning.demos import record_episodes

    if episodes <= 0:  # would write nothing and "succeed"; the learner would fail much later
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    own_env = env is None
    if env is None:
        from robot_rl.envs.pick_cube import PickCubeEnv

        env = PickCubeEnv(cfg)
    expert = env.task.expert(noise=noise, rng=np.random.default_rng(seed))
    try:
        if expert is None:
            raise ValueError(f"task {cfg.task.name!r} has no scripted expert: record a person's "
                             f"demonstrations with `robot-rl record-demos --device "
                             f"spacemouse|gamepad|joy|keyboard`")
        rec = record_episodes(env, ExpertPolicy(expert, env),
                              episodes, out=out, seed=seed, max_attempts=max_attempts,
                              verbose=verbose)
    finally:
        if own_env:
            env.close()
    return {"out": out, "episodes": len(rec.episode_lengths), "attempts": rec.attempts,
            "transitions": rec.transitions, "wall_s": rec.wall_s}


# -- a person's device ------------------------------------------------------------------------
class RecordingError(RuntimeError):
    """The person's device or the graph is not there; the message says what to check."""


@dataclass
class HumanCommand:
    """The newest ``/intervention/action`` (the intervention node's Joy contract)."""
    received: float          # time.monotonic() of its arrival
    action: np.ndarray       # policy action frame, [-1, 1]
    active: bool             # dead-man held
    success: bool = False    # buttons[2]
    failure: bool = False    # buttons[3]


def human_command(axes, buttons, action_dim: int, received: float) -> HumanCommand:
    """Decode the intervention Joy; a malformed one raises ValueError naming what is wrong."""
    axes = np.asarray(axes, np.float32)
    if axes.shape[0] < action_dim or not np.all(np.isfinite(axes[:action_dim])):
        raise ValueError(f"intervention Joy has axes {axes.tolist()}; expected "
                         f"{action_dim} finite values (the policy's action)")

    def pressed(i: int) -> bool:
        return len(buttons) > i and bool(buttons[i])

    return HumanCommand(received, np.clip(axes[:action_dim], -1.0, 1.0), pressed(0),
                        pressed(2), pressed(3))


def teleop_action(cmd: Optional[HumanCommand], now: float, stale_after: float,
                  action_dim: int) -> Tuple[np.ndarray, bool]:
    """(action, intervened): the person's action while the dead-man is held and the command is
    fresh; otherwise no motion and the gripper kept (0), so the arm holds where it is."""
    if cmd is None or not cmd.active or now - cmd.received > stale_after:
        return np.zeros(action_dim, np.float32), False
    return cmd.action.astype(np.float32), True


def episode_outcome(cmd: Optional[HumanCommand], env_success: bool,
                    env_failure: bool = False, success_button: bool = True) -> Optional[str]:
    """"success" (the reward source or the person says so), "discard" (the failure button, or
    the reward source's failure), or None (the episode goes on). ``success_button`` False: the
    button is the reward source itself (``hil.reward.source: human``), whose rule (a hold of
    ``hil.reward.consecutive`` steps) decides through ``env_success``."""
    if env_success or (success_button and cmd is not None and cmd.success):
        return "success"
    if env_failure or (cmd is not None and cmd.failure):
        return "discard"
    return None


class TeleopRecorder:
    """``run_episode`` for ``record_episodes``: one episode driven by the person's device."""

    def __init__(self, env, human, cfg: Config, device: str, start_timeout: float,
                 device_timeout: float, verbose: bool = True):
        """``human``: the person's newest command (robot_rl/ros/demo_recorder.py HumanInput:
        ``latest``, ``wait(predicate, timeout)``, ``intervention_health``, ``topic``)."""
        self.env, self.human, self.cfg, self.device = env, human, cfg, device
        self.action_dim = int(env.action_space.shape[0])
        self.start_timeout, self.device_timeout = start_timeout, device_timeout
        self.stale_after = max(2.0 / cfg.control_rate_hz, cfg.hil.joy.timeout)
        self.step_timeout = env.timeout
        # A reset may wait for the person to re-arrange the scene and confirm.
        r = cfg.hil.reset
        self.reset_timeout = r.timeout + (r.confirm_timeout if r.mode != "move" else 0.0) + 10.0
        self.verbose = verbose
        self.discarded = 0

    def _where(self) -> str:
        return (f"start it with `robot-rl up --profile demos --set hil.device="
                f"{self.cfg.hil.device}` and the same configuration, on ROS_DOMAIN_ID "
                f"{os.environ.get('ROS_DOMAIN_ID', '0')}")

    def check_device(self) -> None:
        """A clear error when no intervention node answers, or it runs another device."""
        if self.human.wait(lambda cmd: True, self.device_timeout) is None:
            raise RecordingError(f"no {self.human.topic} (sensor_msgs/Joy) from the "
                                 f"intervention node within {self.device_timeout:g} s for "
                                 f"--device {self.device}: {self._where()}")
        deadline = time.monotonic() + 2.5  # /diagnostics comes once a second
        while self.human.intervention_health is None and time.monotonic() < deadline:
            time.sleep(0.05)
        health = self.human.intervention_health
        if health and health[1].get("device") not in (None, self.cfg.hil.device):
            raise RecordingError(f"the intervention node reads device {health[1]['device']!r}, "
                                 f"not {self.cfg.hil.device!r} (--device {self.device}): "
                                 f"{self._where()}")

    def _not_started(self) -> RecordingError:
        health = self.human.intervention_health
        status = (f"; the intervention node reports: {health[0]}" if health else "")
        return RecordingError(f"--device {self.device}: the dead-man was not held within "
                              f"{self.start_timeout:g} s of the reset (hold it to start an "
                              f"episode; check the device is connected and mapped)"
                              f"{status}")

    def __call__(self, env, policy, seed: int):
        env.timeout = self.reset_timeout
        try:
            obs, _ = env.reset(seed=seed)
        finally:
            env.timeout = self.step_timeout
        if self.verbose:
            print("[record-demos] scene ready: hold the dead-man to start", flush=True)
        if self.human.wait(lambda cmd: cmd.active, self.start_timeout) is None:
            raise self._not_started()
        episode: List[tuple] = []
        task = env.task
        max_steps = self.cfg.task.max_episode_steps
        while True:
            action, _ = teleop_action(self.human.latest, time.monotonic(), self.stale_after,
                                      self.action_dim)
            next_obs, reward, terminated, truncated, info = env.step(action)
            outcome = episode_outcome(self.human.latest, bool(info.get("success", False)),
                                      bool(info.get("failure", False)),
                                      success_button=self.cfg.hil.reward.source != "human")
            if outcome == "success":
                if not info.get("success", False):  # the person said so: the source's reward
                    reward = task.reward_from_success(True)
                terminated, truncated = True, False
            elif outcome == "discard":
                terminated, truncated = False, True
            episode.append((obs, np.asarray(action, np.float32), float(reward), next_obs,
                            bool(terminated), bool(truncated)))
            obs = next_obs
            if outcome is not None or terminated or truncated or len(episode) >= max_steps:
                break
        kept = outcome == "success"
        if not kept:
            self.discarded += 1
        if self.verbose:
            why = {"success": "success: kept", "discard": "discarded (failure)"}.get(
                outcome, "no success within the step limit: set aside")
            print(f"[record-demos] episode of {len(episode)} steps: {why}", flush=True)
        return episode, kept


def main(argv: Optional[Sequence[str]] = None) -> int:
    from robot_rl.cli import parse_sets
    from robot_rl.schema import ConfigError

    p = argparse.ArgumentParser(prog="robot-rl record-demos",
                                description="Record successful scripted-expert demonstrations "
                                            "(--device: robot_rl/ros/demo_recorder.py).")
    p.add_argument("--out", required=True, help="new replay directory to write")
    p.add_argument("--episodes", type=int, default=20, help="successful episodes to keep")
    p.add_argument("--config", default="", help="YAML configuration (default: built-in)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--ros", action="store_true",
                   help="scripted: drive a running sim over ROS 2 instead of in-process")
    p.add_argument("--noise", type=float, default=0.05, help="scripted expert action noise")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.episodes <= 0:  # would write no demonstrations yet exit 0
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    try:
        cfg = load_config(args.config or None, parse_sets(args.set))
        env = None
        if args.ros:
            os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
            from robot_rl.envs.ros_env import RosRobotEnv

            env = RosRobotEnv(cfg, node_name="record_demos", timeout=10.0, startup_timeout=30.0)
        try:
            res = record(cfg, args.out, args.episodes, env=env, seed=args.seed, noise=args.noise)
        finally:
            if env is not None:
                env.close()
    except (ConfigError, FileExistsError, RuntimeError) as exc:
        print(f"[record-demos] error: {exc}", file=sys.stderr)
        return 2
    print(f"[record-demos] wrote {res['episodes']} demonstrations ({res['transitions']} "
          f"transitions, {res['attempts']} attempts, {res['wall_s']:.1f} s) to {res['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
