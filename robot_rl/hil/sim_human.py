"""A simulated human for HIL-SERL in the MuJoCo stand-in: watches the policy through the robot
contract (TCP pose, object and fixture poses, gripper opening, taxels) and corrects it with the
task's scripted expert (``Task.expert``) when it drifts away from the task, then hands control
back. What "drifting" means comes from the task (``Task.human_view``, docs/tasks.md): how far
the goal still is, and the task's own reasons.

Takes over (only in episodes it watches: probability ``prob`` per episode) when, after
``grace_steps``:

* the distance to the goal shrank less than ``progress_eps`` over the last
  ``no_progress_steps`` steps while still farther than ``near_radius`` (a windowed test: a
  policy dithering at random sets new best distances by chance, but does not close in),
* it grew beyond ``region_margin`` over the episode's initial distance,
* the task gives a reason of its own (pick: the cube pushed more than ``cube_moved`` from its
  start while not held),

never while the task says the hard part is done (pick: the cube is held). Releases once the
task says the correction did its job (pick: the cube held ``release_lift`` above its start;
peg: the peg's tip in the hole), or after ``max_steps`` steps of correction; then waits
``cooldown_steps`` before judging again. For the pick task the distance is the TCP's to the
cube. ROS-free: the intervention node feeds it ``Snapshot``s built from the topics.
"""
from __future__ import annotations

import numpy as np

from robot_rl.envs.task import HumanView, Snapshot, Task
from robot_rl.hil.config import SimHumanConfig
from robot_rl.hil.mapping import InterventionCommand
from robot_rl.schema import ConfigError


class SimHuman:
    def __init__(self, cfg: SimHumanConfig, task: Task, gripper_max_width: float = 0.08):
        self.cfg = cfg
        self.task = task
        self.action_dim = len(task.action_names)
        self.gripper_max_width = gripper_max_width
        self.rng = np.random.default_rng(cfg.seed)
        self.expert = task.expert(noise=cfg.noise, rng=self.rng)
        if self.expert is None:
            raise ConfigError(f"hil.device sim_human: task {task.name or type(task).__name__!r} "
                              f"has no scripted expert (Task.expert returns None) to correct "
                              f"the policy with; expected a task with an expert, or a person's "
                              f"device (hil.device: spacemouse, gamepad, keyboard or joy)")
        if type(task).human_view is Task.human_view:
            raise ConfigError(f"hil.device sim_human: task {task.name or type(task).__name__!r} "
                              f"does not say how a watcher judges it (Task.human_view returns "
                              f"None); expected a human_view(snap, start) method "
                              f"(docs/tasks.md), or a person's device")
        self.takeovers = 0            # over the lifetime
        self.log: list[tuple[int, str]] = []  # (episode, why) for every takeover and release
        self.episode = -1
        self.reset()

    @classmethod
    def from_config(cls, cfg, task: Task | None = None) -> "SimHuman":
        """From the whole robot_rl Config; ``task``: the configured task by default (made
        here: the human keeps its own per-episode state, e.g. the peg task's hole estimate)."""
        if task is None:
            from robot_rl.envs.task import make_task
            task = make_task(cfg, np.array([0.0, 0.0, 0.0, 1.0]), check_graph=False)
        return cls(cfg.hil.sim_human, task, cfg.robot.gripper_max_width)

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
        self.start: Snapshot | None = None
        self.prev_object: np.ndarray | None = None
        self.initial_dist = 0.0
        self.dists: list[float] = []  # distance to the goal per step while judging
        self.reason = ""
        self.task.reset(None, self.rng)
        self.expert.reset()

    def _inactive(self, snap: Snapshot) -> InterventionCommand:
        return InterventionCommand(np.zeros(self.action_dim, np.float32), False, stamp=snap.stamp)

    def _release(self, why: str) -> None:
        self.active = False
        self.reason = why
        self.log.append((self.episode, f"release: {why}"))
        self.cooldown_until = self.steps + self.cfg.cooldown_steps
        self.dists = []

    def _drift(self, view: HumanView) -> str:
        c, dist = self.cfg, view.distance
        self.dists.append(dist)
        if dist > self.initial_dist + c.region_margin:
            return (f"left the region around the goal ({dist:.3f} m from it, started "
                    f"{self.initial_dist:.3f} m)")
        if view.drift:
            return view.drift
        if (not view.settled and dist > c.near_radius and len(self.dists) > c.no_progress_steps
                and self.dists[-1 - c.no_progress_steps] - dist < c.progress_eps):
            gained = self.dists[-1 - c.no_progress_steps] - dist
            return (f"no progress toward the goal: {gained:.3f} m closer in "
                    f"{c.no_progress_steps} steps")
        return ""

    def _scene_was_reset(self, snap: Snapshot) -> bool:
        """The object jumped without the gripper near it (not for a task without one)."""
        if snap.object_pos is None:
            return False
        obj, prev = np.asarray(snap.object_pos, float), self.prev_object
        self.prev_object = obj.copy()
        return bool(prev is not None and not self.active
                    and np.linalg.norm(obj - prev) > 0.05
                    and np.linalg.norm(snap.ee_pos - prev) > 0.06)

    def _correct(self, snap: Snapshot, view: HumanView) -> InterventionCommand | None:
        """The expert's command while the correction goes on; None once it hands back."""
        self.active_steps += 1
        if view.done:
            self._release(view.done)
        elif self.active_steps >= self.cfg.max_steps:
            self._release(f"gave up after {self.active_steps} steps")
        else:
            lift = 0.0 if snap.object_pos is None else snap.object_pos[2] - self.start.object_pos[2]
            if (getattr(self.expert, "phase", "") == "lift" and snap.gripper_width < 0.005
                    and not view.settled and lift < 0.01):
                self.expert.reset()  # closed on nothing: open and approach again, as a human would
                self.retries += 1
            return InterventionCommand(self.expert.act(snap), True, stamp=snap.stamp)
        return None

    def step(self, snap: Snapshot) -> InterventionCommand:
        """One control period: the human's command for this snapshot (active or not)."""
        if self._scene_was_reset(snap):
            self.reset()
            self._scene_was_reset(snap)  # remember the object where the new scene put it
        if self.start is None or self.steps < self.cfg.grace_steps:
            # Anchored over the grace period: the first poses after a reset may predate it.
            self.start = snap
            self.initial_dist = self.task.human_view(snap, snap).distance
        self.steps += 1
        view = self.task.human_view(snap, self.start)
        if self.active:
            cmd = self._correct(snap, view)
            if cmd is not None:
                return cmd
        if not self.watching or self.steps <= self.cfg.grace_steps:
            return self._inactive(snap)
        why = self._drift(view)
        if not why or self.steps < self.cooldown_until or view.settled:
            return self._inactive(snap)
        self.active, self.active_steps, self.reason = True, 0, why
        self.takeovers += 1
        self.episode_takeovers += 1
        self.log.append((self.episode, f"take over: {why}"))
        self.expert.reset()
        return InterventionCommand(self.expert.act(snap), True, stamp=snap.stamp)
