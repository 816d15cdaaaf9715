"""Tasks: what a skill observes, how its actions move the robot, and when it succeeded,
independent of where the robot's data comes from.

Both Gymnasium environments (in-process MuJoCo and the ROS 2 facade), the actor, the deployed
controller and the export metadata assemble a ``Snapshot`` of the hardware contract and hand it
to the configured task (``task.name``, :func:`make_task`), so observations, actions, rewards and
success mean exactly the same thing everywhere, and on a real robot.

``task.name`` is a registered name (``@register_task``), ``package.module:ClassName`` (a user's
task in their own module, no edit of robot_rl), or the name of an entry point in the
``robot_rl.tasks`` group of an installed package.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pinocchio as pin
from gymnasium import spaces

from robot_rl.config import Config
from robot_rl.robot.controller import matrix_to_quat_xyzw, quat_xyzw_to_matrix

CUBE_HALF = 0.025
GRIPPER_CLOSE, GRIPPER_OPEN = 0.5, -0.5  # thresholds on the gripper action


@dataclass
class Snapshot:
    """One synchronized reading of the robot contract (all fields from the same instant)."""
    stamp: float
    ee_pos: np.ndarray
    ee_quat: np.ndarray            # x, y, z, w
    ee_vel: np.ndarray             # linear (3) + angular (3), base frame
    gripper_width: float
    tactile: dict[str, np.ndarray] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    object_pos: np.ndarray | None = None  # privileged: simulator state only


# The reward each task can produce, declared once: the learner refuses transitions outside
# it (a finite 1e6 reward from a bad or hostile actor would wreck the critic at its first update).
# sparse: 0, or 1 on success. dense: -1 + 0.9 * progress in [-1, -0.1] per step, 0 on success.
REWARD_RANGES = {"sparse": (0.0, 1.0), "dense": (-1.0, 0.0)}


def reward_range(task_cfg) -> tuple[float, float]:
    """``(low, high)`` of the reward of the configured task (``cfg.task``)."""
    return REWARD_RANGES[task_cfg.reward]


class Task:
    """A task definition. Subclasses set ``action_names``, ``action_space``,
    ``observation_space``, ``reward_range`` in ``__init__(cfg, home_quat)`` and implement
    ``observe`` and ``command``; ``success`` (and a dense ``reward``) from simulator state are
    optional: on a robot success comes from the configured reward source.

    ``privileged``: the ``Snapshot`` fields this task reads that only a simulator has
    (``"object_pos"``); a graph without them refuses the task with a clear error."""

    name = ""
    privileged: frozenset = frozenset()

    def reset(self) -> None:
        """A new episode starts."""

    def observe(self, snap: Snapshot) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def command(self, action: np.ndarray, snap: Snapshot) -> tuple[np.ndarray, np.ndarray, float]:
        """Action -> (TCP target position, orientation x, y, z, w, gripper opening m)."""
        raise NotImplementedError

    def success(self, snap: Snapshot) -> bool:
        """Success from simulator state (scoring, or the ``sim_state`` reward source)."""
        raise NotImplementedError(f"task {self.name!r} has no success test from simulator state")

    def reward(self, snap: Snapshot) -> float:
        return self.reward_from_success(self.success(snap))

    def reward_from_success(self, success: bool) -> float:
        """The reward when success comes from outside (a classifier, a human, a topic)."""
        low, high = self.reward_range
        return high if success else low


TASKS: dict[str, type] = {}


def register_task(name: str):
    """Class decorator: ``@register_task("my_task")`` makes ``task.name: my_task`` select it."""
    def register(cls):
        TASKS[name] = cls
        cls.name = name
        return cls
    return register


def task_class(name: str) -> type:
    """The task class ``task.name`` names (see the module docstring), or a ValueError saying
    what was tried."""
    if name in TASKS:
        return TASKS[name]
    if ":" in name:
        import importlib
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"task.name {name!r}: cannot load {attr!r} from module "
                             f"{module_name!r} ({exc})") from exc
    else:
        from importlib.metadata import entry_points
        found = [ep for ep in entry_points(group="robot_rl.tasks") if ep.name == name]
        if not found:
            raise ValueError(f"unknown task.name {name!r}; expected one of {sorted(TASKS)}, "
                             f"'package.module:ClassName', or an entry point of the "
                             f"'robot_rl.tasks' group")
        cls = found[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ValueError(f"task.name {name!r} is {cls!r}, not a subclass of "
                         f"robot_rl.envs.task.Task")
    return cls


def make_task(cfg: Config, home_quat: np.ndarray) -> Task:
    """The configured task, holding ``home_quat`` (x, y, z, w) as its reference orientation."""
    return task_class(cfg.task.name)(cfg, home_quat)


@register_task("pick_cube")
class PickCubeTask(Task):
    """Observation/action mapping, scripted reward and success for picking and lifting a cube."""

    def __init__(self, cfg: Config, home_quat: np.ndarray):
        self.cfg = cfg
        self.task = cfg.task
        self.home_rot = quat_xyzw_to_matrix(home_quat)
        self.gripper_closed = False
        self.use_yaw = self.task.action_space == "xyz_yaw_gripper"
        self.action_names = ["dx", "dy", "dz"] + (["dyaw"] if self.use_yaw else []) + ["gripper"]
        self.action_space = spaces.Box(-1.0, 1.0, (len(self.action_names),), np.float32)
        self.observation_space = spaces.Dict(self._observation_spaces())
        self.reward_range = reward_range(self.task)
        self.privileged = frozenset({"object_pos"} if "object" in self.task.observations else ())

    def _observation_spaces(self) -> dict[str, spaces.Space]:
        obs: dict[str, spaces.Space] = {}
        groups = self.task.observations
        if "state" in groups:
            # TCP position (3), TCP linear velocity (3), finger opening (1), gripper closed (1)
            obs["state"] = spaces.Box(-np.inf, np.inf, (8,), np.float32)
        if "object" in groups:
            # Cube position and cube-minus-TCP (3 + 3): simulator state, not on a real robot.
            obs["object"] = spaces.Box(-np.inf, np.inf, (6,), np.float32)
        if "tactile" in groups:
            for t in self.cfg.tactile:
                obs[f"tactile_{t.name}"] = spaces.Box(0.0, np.inf, (t.rows, t.cols), np.float32)
        if "images" in groups:
            for cam in self.cfg.cameras:
                width, height = (cam.resize or (cam.crop[2:] if cam.crop else None)
                                 or (cam.width, cam.height))
                obs[f"image_{cam.name}"] = spaces.Box(0, 255, (height, width, 3), np.uint8)
        return obs

    def reset(self) -> None:
        self.gripper_closed = False

    def observe(self, snap: Snapshot) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        keys = self.observation_space.spaces
        if "state" in keys:
            obs["state"] = np.concatenate([
                snap.ee_pos, snap.ee_vel[:3], [snap.gripper_width, float(self.gripper_closed)]
            ]).astype(np.float32)
        if "object" in keys:
            if snap.object_pos is None:
                raise ValueError("the 'object' observation needs the simulator's object pose; "
                                 "remove 'object' from task.observations on a real robot")
            obs["object"] = np.concatenate(
                [snap.object_pos, snap.object_pos - snap.ee_pos]).astype(np.float32)
        for t in self.cfg.tactile:
            key = f"tactile_{t.name}"
            if key in keys:
                obs[key] = np.asarray(snap.tactile[t.name], np.float32)
        for cam in self.cfg.cameras:
            key = f"image_{cam.name}"
            if key in keys:
                obs[key] = snap.images[cam.name]
        return obs

    def command(self, action: np.ndarray, snap: Snapshot) -> tuple[np.ndarray, np.ndarray, float]:
        """Action in [-1, 1] -> (TCP target position, orientation x,y,z,w, gripper opening m)."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected "
                             f"{self.action_space.shape} ({', '.join(self.action_names)})")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action is not finite: {action}")
        action = np.clip(action, -1.0, 1.0)
        target = snap.ee_pos + action[:3] * self.task.max_step_pos
        rot = self.home_rot
        if self.use_yaw:
            current_yaw = pin.rpy.matrixToRpy(quat_xyzw_to_matrix(snap.ee_quat) @ self.home_rot.T)[2]
            yaw = current_yaw + action[3] * self.task.max_step_yaw
            rot = pin.rpy.rpyToMatrix(0.0, 0.0, yaw) @ self.home_rot
        grip = action[-1]
        if grip >= GRIPPER_CLOSE:
            self.gripper_closed = True
        elif grip <= GRIPPER_OPEN:
            self.gripper_closed = False
        width = 0.0 if self.gripper_closed else self.cfg.robot.gripper_max_width
        return target, matrix_to_quat_xyzw(rot), width

    def success(self, snap: Snapshot) -> bool:
        if snap.object_pos is None:
            return False
        lifted = snap.object_pos[2] - CUBE_HALF >= self.task.lift_height
        held = np.linalg.norm(snap.object_pos - snap.ee_pos) < 0.04
        return bool(lifted and held)

    def progress(self, snap: Snapshot) -> float:
        """0..1 toward success from simulator state: reach the cube, grasp it, lift it."""
        if snap.object_pos is None:
            return 0.0
        distance = float(np.linalg.norm(snap.object_pos - snap.ee_pos))
        reach = 1.0 - np.tanh(10.0 * distance)
        closed_on_cube = (distance < 0.03 and self.gripper_closed
                          and snap.gripper_width > 0.5 * 2 * CUBE_HALF)
        lift = np.clip((snap.object_pos[2] - CUBE_HALF) / self.task.lift_height, 0.0, 1.0)
        return float(0.3 * reach + 0.2 * closed_on_cube + 0.5 * lift * closed_on_cube)

    def reward(self, snap: Snapshot) -> float:
        """sparse: 1 on success, as in SERL. dense: -1 + 0.9 * progress per step, 0 on success."""
        success = self.success(snap)
        if self.task.reward == "sparse":
            return float(success)
        return 0.0 if success else -1.0 + 0.9 * self.progress(snap)
