"""A simulated human for HIL-SERL in the MuJoCo stand-in: watches the policy through the robot
contract (TCP pose, object pose, gripper opening) and corrects it with the scripted expert when
it drifts away from the task, then hands control back.

Takes over (only in episodes it watches: probability ``prob`` per episode) when, after
``grace_steps``:

* the TCP got less than ``progress_eps`` closer to the cube over the last ``no_progress_steps``
  steps while still farther than ``near_radius`` from it (a windowed test: a policy dithering
  at random sets new best distances by chance, but does not close in),
* the TCP leaves the region around the cube (``region_margin`` beyond the episode's initial
  TCP-cube distance),
* the cube was pushed more than ``cube_moved`` from its start while not held.

Releases once the cube is held ``release_lift`` above its start (the correction worked), or
after ``max_steps`` steps of correction; then waits ``cooldown_steps`` before judging again.
ROS-free: the intervention node feeds it ``Snapshot``s built from the topics.
"""
from __future__ import annotations

import numpy as np

from robot_rl.envs.expert import PickExpert
from robot_rl.envs.task import Snapshot
from robot_rl.hil.config import SimHumanConfig
from robot_rl.hil.mapping import InterventionCommand


class SimHuman:
    def __init__(self, cfg: SimHumanConfig, max_step_pos: float, lift_height: float,
                 action_dim: int = 4, gripper_max_width: float = 0.08):
        self.cfg = cfg
        self.action_dim = action_dim
        self.gripper_max_width = gripper_max_width
        self.rng = np.random.default_rng(cfg.seed)
        self.expert = PickExpert(max_step_pos, lift_height, noise=cfg.noise, rng=self.rng)
        self.takeovers = 0            # over the lifetime
        self.log: list[tuple[int, str]] = []  # (episode, why) for every takeover and release
        self.episode = -1
        self.reset()

    @classmethod
    def from_config(cls, cfg) -> "SimHuman":
        """From the whole robot_rl Config."""
        dim = 5 if cfg.task.action_space == "xyz_yaw_gripper" else 4
        return cls(cfg.hil.sim_human, cfg.task.max_step_pos, cfg.task.lift_height, dim,
                   cfg.robot.gripper_max_width)

    # -- per episode ------------------------------------------------------------------------------
    def reset(self, episode: int | None = None) -> None:
        """A new episode begins (the actor's /episode/event, or a detected scene reset)."""
        self.episode = self.episode + 1 if episode is None else episode
        self.steps = 0
        self.active = False
        self.active_steps = 0
        self.episode_takeovers = 0
        self.retries = 0
        self.watching = bool(self.rng.random() < self.cfg.prob)
        self.cooldown_until = 0
        self.start_cube: np.ndarray | None = None
        self.prev_cube: np.ndarray | None = None
        self.initial_dist = 0.0
        self.dists: list[float] = []  # TCP-cube distance per step while judging
        self.reason = ""
        self.expert.reset()

    def _held(self, snap: Snapshot, lift: float) -> bool:
        near = np.linalg.norm(snap.object_pos - snap.ee_pos) < 0.04
        closed = snap.gripper_width < self.gripper_max_width - 0.01
        return bool(lift > 0.01 and near and closed)

    def _inactive(self, snap: Snapshot) -> InterventionCommand:
        return InterventionCommand(np.zeros(self.action_dim, np.float32), False, stamp=snap.stamp)

    def _release(self, why: str) -> None:
        self.active = False
        self.reason = why
        self.log.append((self.episode, f"release: {why}"))
        self.cooldown_until = self.steps + self.cfg.cooldown_steps
        self.dists = []

    def _drift(self, snap: Snapshot, dist: float, held: bool) -> str:
        c = self.cfg
        self.dists.append(dist)
        if dist > self.initial_dist + c.region_margin:
            return (f"TCP left the region around the cube ({dist:.3f} m away, started "
                    f"{self.initial_dist:.3f} m)")
        pushed = np.linalg.norm((snap.object_pos - self.start_cube)[:2])
        if not held and pushed > c.cube_moved:
            return f"cube pushed {pushed:.3f} m off its start"
        if (not held and dist > c.near_radius and len(self.dists) > c.no_progress_steps
                and self.dists[-1 - c.no_progress_steps] - dist < c.progress_eps):
            gained = self.dists[-1 - c.no_progress_steps] - dist
            return (f"no progress toward the cube: {gained:.3f} m closer in "
                    f"{c.no_progress_steps} steps")
        return ""

    def step(self, snap: Snapshot) -> InterventionCommand:
        """One control period: the human's command for this snapshot (active or not)."""
        if snap.object_pos is None:
            raise ValueError("the simulated human needs the object pose (/sim/object_pose)")
        cube = np.asarray(snap.object_pos, float)
        if (self.prev_cube is not None and not self.active
                and np.linalg.norm(cube - self.prev_cube) > 0.05
                and np.linalg.norm(snap.ee_pos - self.prev_cube) > 0.06):
            self.reset()  # the cube jumped without the gripper near it: the scene was reset
        self.prev_cube = cube.copy()
        dist = float(np.linalg.norm(cube - snap.ee_pos))
        if self.start_cube is None or self.steps < self.cfg.grace_steps:
            # Anchored over the grace period: the first poses after a reset may predate it.
            self.start_cube, self.initial_dist = cube.copy(), dist
        self.steps += 1
        lift = float(cube[2] - self.start_cube[2])
        held = self._held(snap, lift)
        if self.active:
            self.active_steps += 1
            if held and lift >= self.cfg.release_lift:
                self._release(f"corrected: cube held {lift:.3f} m up")
            elif self.active_steps >= self.cfg.max_steps:
                self._release(f"gave up after {self.active_steps} steps")
            else:
                if (self.expert.phase == "lift" and snap.gripper_width < 0.005
                        and not held and lift < 0.01):
                    self.expert.reset()  # closed on nothing: open and approach again, as a human would
                    self.retries += 1
                action = self.expert.act(snap, self.action_dim)
                return InterventionCommand(action, True, stamp=snap.stamp)
        if not self.watching or self.steps <= self.cfg.grace_steps:
            return self._inactive(snap)
        why = self._drift(snap, dist, held)
        if not why or self.steps < self.cooldown_until or held:
            return self._inactive(snap)
        self.active, self.active_steps, self.reason = True, 0, why
        self.takeovers += 1
        self.episode_takeovers += 1
        self.log.append((self.episode, f"take over: {why}"))
        self.expert.reset()
        return InterventionCommand(self.expert.act(snap, self.action_dim), True, stamp=snap.stamp)
