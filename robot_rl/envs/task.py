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
from robot_rl.hil.config import simulator_state_available
from robot_rl.robot.controller import matrix_to_quat_xyzw, quat_xyzw_to_matrix
from robot_rl.schema import ConfigError

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
    # privileged: the pose (x y z, qx qy qz qw) of each fixture a task added (Task.scene)
    fixtures: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class HumanView:
    """How a person watching the robot judges the task at one snapshot (``Task.human_view``):
    what the simulated human (robot_rl/hil/sim_human.py) decides by."""
    distance: float   # m still to go toward the goal: its region and no-progress tests read it
    settled: bool = False  # the hard part is done (pick: the cube is held): no takeover now
    drift: str = ""   # a reason of the task's own to take over now (pick: the cube was pushed)
    done: str = ""    # a correction has done its job: hand control back (why)


# The reward each task can produce, declared once: the learner refuses transitions outside
# it (a finite 1e6 reward from a bad or hostile actor would wreck the critic at its first update).
# sparse: 0, or 1 on success. dense: -1 + 0.9 * progress in [-1, -0.1] per step, 0 on success.
REWARD_RANGES = {"sparse": (0.0, 1.0), "dense": (-1.0, 0.0)}


def reward_range(task_cfg) -> tuple[float, float]:
    """``(low, high)`` of the reward of the configured task (``cfg.task``)."""
    return REWARD_RANGES[task_cfg.reward]


#: What a task needs between episodes on a robot (``Task.reset_strategy``), in the words of
#: ``hil.reset.mode``: ``move`` (the arm back home with a random offset is enough),
#: ``human`` / ``move_then_human`` (a person re-arranges the scene and confirms). The MuJoCo
#: stand-in (not in rehearsal) teleports arm and scene whatever the task declares.
RESET_STRATEGIES = ("move", "human", "move_then_human")
#: Reset modes that do at least what a strategy needs (a person can always also move the arm).
_RESET_MODES_FOR = {"move": ("move", "human", "move_then_human"),
                    "human": ("human", "move_then_human"),
                    "move_then_human": ("move_then_human",)}


def _no_simulator_state_reason(cfg: Config) -> str:
    if cfg.driver.adapter != "sim":
        return f"driver.adapter is {cfg.driver.adapter!r} (a real robot)"
    return "sim.rehearsal is true (the stand-in behaves like hardware)"


class Task:
    """A task definition: what the policy observes, how its action moves the robot, when an
    episode succeeds or ends, and how the scene is reset. ``docs/tasks.md`` shows how to write
    one in your own module.

    The base class is a complete task over the hardware contract (``Snapshot``): the
    observation groups of ``task.observations`` (``observation_spaces`` / ``observe``), the
    TCP-delta action ``xyz_gripper`` / ``xyz_yaw_gripper`` (``command``), sparse reward and
    termination on success, and SERL's relative frame (``task.relative_frame``). A subclass
    overrides what differs; only ``success`` (from simulator state) has no default.

    ``privileged``: the ``Snapshot`` fields the task reads that only a simulator has
    (``"object_pos"``); :func:`make_task` refuses such a task on a graph without them.
    ``reset_strategy``: what the scene needs between episodes on a robot (``RESET_STRATEGIES``).
    """

    name = ""
    privileged: frozenset = frozenset()
    reset_strategy = "move"

    def __init__(self, cfg: Config, home_quat: np.ndarray):
        self.cfg = cfg
        self.task = cfg.task
        self.home_rot = quat_xyzw_to_matrix(home_quat)
        self.relative_frame = bool(getattr(cfg.task, "relative_frame", False))
        self.start_pos: np.ndarray | None = None   # relative frame: the episode's start TCP
        self.start_rot: np.ndarray | None = None
        self.gripper_closed = False
        self.use_yaw = self.task.action_space == "xyz_yaw_gripper"
        self.action_names = self.make_action_names()
        self.action_space = spaces.Box(-1.0, 1.0, (len(self.action_names),), np.float32)
        self.observation_space = spaces.Dict(self.observation_spaces())
        self.reward_range = reward_range(self.task)
        self.max_episode_steps = self.task.max_episode_steps
        if "object" in self.observation_space.spaces:
            self.privileged = frozenset({"object_pos"}) | type(self).privileged

    # -- what the policy sees ------------------------------------------------------------------
    def make_action_names(self) -> list[str]:
        return ["dx", "dy", "dz"] + (["dyaw"] if self.use_yaw else []) + ["gripper"]

    def observation_spaces(self) -> dict[str, spaces.Space]:
        """The observation terms, by name (the groups of ``task.observations``)."""
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

    def reset(self, snap: Snapshot | None = None, rng: np.random.Generator | None = None) -> None:
        """A new episode starts at ``snap`` (None: the first snapshot the task then sees).
        ``rng``: the environment's seeded generator, for a task that draws per-episode goals."""
        self.gripper_closed = False
        self.start_pos = self.start_rot = None
        if snap is not None:
            self._start_frame(snap)

    def observe(self, snap: Snapshot) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        keys = self.observation_space.spaces
        if "state" in keys:
            obs["state"] = np.concatenate([
                self.point_to_task_frame(snap.ee_pos, snap),
                self.vector_to_task_frame(snap.ee_vel[:3], snap),
                [snap.gripper_width, float(self.gripper_closed)]
            ]).astype(np.float32)
        if "object" in keys:
            if snap.object_pos is None:
                raise ValueError("the 'object' observation needs the simulator's object pose; "
                                 "remove 'object' from task.observations on a real robot")
            obs["object"] = np.concatenate(
                [self.point_to_task_frame(snap.object_pos, snap),
                 self.vector_to_task_frame(snap.object_pos - snap.ee_pos, snap)]
            ).astype(np.float32)
        for t in self.cfg.tactile:
            key = f"tactile_{t.name}"
            if key in keys:
                obs[key] = np.asarray(snap.tactile[t.name], np.float32)
        for cam in self.cfg.cameras:
            key = f"image_{cam.name}"
            if key in keys:
                obs[key] = snap.images[cam.name]
        return obs

    # -- how the action moves the robot --------------------------------------------------------
    def check_action(self, action: np.ndarray) -> np.ndarray:
        """``action`` as float64 clipped to [-1, 1], or a ValueError naming what is wrong."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected "
                             f"{self.action_space.shape} ({', '.join(self.action_names)})")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action is not finite: {action}")
        return np.clip(action, -1.0, 1.0)

    def command(self, action: np.ndarray, snap: Snapshot) -> tuple[np.ndarray, np.ndarray, float]:
        """Action in [-1, 1] -> (TCP target position, orientation x,y,z,w, gripper opening m):
        at most ``task.max_step_pos`` m from the current TCP (along the start frame's axes
        with ``relative_frame``), the home orientation (turned by ``dyaw`` about the base
        z axis), the gripper latched closed above 0.5 and open below -0.5."""
        action = self.check_action(action)
        target = snap.ee_pos + self.vector_to_base_frame(action[:3] * self.task.max_step_pos, snap)
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

    # -- relative frame (SERL) -----------------------------------------------------------------
    def _start_frame(self, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        if self.start_pos is None:
            self.start_pos = np.array(snap.ee_pos, dtype=np.float64)
            self.start_rot = quat_xyzw_to_matrix(np.asarray(snap.ee_quat, dtype=np.float64))
        return self.start_pos, self.start_rot

    def point_to_task_frame(self, point: np.ndarray, snap: Snapshot) -> np.ndarray:
        """A base-frame position as the policy sees it: unchanged, or with ``relative_frame``
        relative to the episode's start TCP pose (the start TCP is 0)."""
        if not self.relative_frame:
            return point
        origin, rot = self._start_frame(snap)
        return rot.T @ (np.asarray(point, dtype=np.float64) - origin)

    def vector_to_task_frame(self, vector: np.ndarray, snap: Snapshot) -> np.ndarray:
        """A base-frame direction (velocity, offset) as the policy sees it."""
        if not self.relative_frame:
            return vector
        return self._start_frame(snap)[1].T @ np.asarray(vector, dtype=np.float64)

    def vector_to_base_frame(self, vector: np.ndarray, snap: Snapshot) -> np.ndarray:
        """A policy-frame direction (an action's translation) in base coordinates."""
        if not self.relative_frame:
            return vector
        return self._start_frame(snap)[1] @ np.asarray(vector, dtype=np.float64)

    def action_from_base_frame(self, action: np.ndarray, snap: Snapshot) -> np.ndarray:
        """A device's command (translation along the base axes, as the intervention node
        publishes it) as this task's action, so a person's correction moves the arm the way
        they pushed and is stored as the action the policy should have taken. Identity
        without ``relative_frame``."""
        action = np.array(action, dtype=np.float32)
        if self.relative_frame and action.shape[0] >= 3:
            action[:3] = np.clip(self.vector_to_task_frame(action[:3].astype(np.float64), snap),
                                 -1.0, 1.0)
        return action

    # -- success, reward, termination ----------------------------------------------------------
    def success(self, snap: Snapshot) -> bool:
        """Success from simulator state (scoring, or the ``sim_state`` reward source)."""
        raise NotImplementedError(f"task {self.name!r} has no success test from simulator state")

    def reward(self, snap: Snapshot) -> float:
        return self.reward_from_success(self.success(snap))

    def reward_from_success(self, success: bool) -> float:
        """The reward when success comes from outside (a classifier, a human, a topic)."""
        low, high = self.reward_range
        return high if success else low

    def terminated(self, snap: Snapshot, success: bool) -> bool:
        """Whether the episode ends here (a success; a task may add failures, e.g. the object
        fell off the table). The time limit (``max_episode_steps``) truncates instead."""
        return bool(success)

    # -- the simulated scene ---------------------------------------------------------------------
    @classmethod
    def scene(cls, desc, cfg: Config):
        """The simulated scene this task needs, from the pick scene ``desc`` (a
        ``robot_rl.sim.scene_description.SceneDescription``): unchanged by default; a task
        returns ``dataclasses.replace(desc, object=..., fixtures=...)`` to swap the movable
        object or add static fixtures. Class-level: the simulator builds it without a task."""
        return desc

    @classmethod
    def place_scene(cls, world, rng: np.random.Generator) -> None:
        """Arrange the scene at every simulator reset, after the arm went home and the object
        was put on the table (``robot_rl.sim.world.SimWorld``: ``set_fixture_pose``,
        ``set_object_pose``, ``hold_fingers``, ``step_physics``). ``rng``: the world's seeded
        generator. Nothing by default."""

    # -- demonstrations and the simulated human ------------------------------------------------
    def human_view(self, snap: Snapshot, start: Snapshot) -> HumanView | None:
        """How a person watching judges progress (``HumanView``), ``start`` being the episode's
        first snapshot; None (default): the task cannot be watched, so ``hil.device:
        sim_human`` is refused. Reads simulator state, like the expert that corrects."""
        return None

    def expert(self, noise: float = 0.0, rng: np.random.Generator | None = None):
        """A scripted expert for simulated demonstrations (``reset()``, ``act(snap) ->
        action``), or None: demonstrations then come from a person (``robot-rl record-demos
        --device ...``)."""
        return None


# The registry lives in robot_rl/envs/registry.py, so the simulator can look a task up by name
# without importing this module; re-exported here for task authors.
from robot_rl.envs.registry import BUILTIN_TASKS, TASKS, register_task, task_class  # noqa: E402,F401


def make_task(cfg: Config, home_quat: np.ndarray, *, check_graph: bool = True) -> Task:
    """The configured task, holding ``home_quat`` (x, y, z, w) as its reference orientation.

    ``check_graph``: refuse (ConfigError) a task whose ``privileged`` fields the configured
    graph cannot provide, and warn when ``hil.reset.mode`` does less than the task's
    ``reset_strategy`` needs on a robot. Off only for offline work that needs the task's
    spaces, not a robot (export metadata, dataset import)."""
    cls = task_class(cfg.task.name)
    task = cls(cfg, home_quat)
    task.name = cfg.task.name  # its identity in metadata and messages, however it was found
    if not isinstance(getattr(task, "action_space", None), spaces.Box) or not isinstance(
            getattr(task, "observation_space", None), spaces.Dict):
        raise ConfigError(f"task.name {cfg.task.name!r}: {cls.__name__} must set action_space "
                         f"(a gymnasium Box) and observation_space (a gymnasium Dict) in __init__")
    if task.reset_strategy not in RESET_STRATEGIES:
        raise ConfigError(f"task.name {cfg.task.name!r}: reset_strategy "
                         f"{task.reset_strategy!r} is not one of {list(RESET_STRATEGIES)}")
    if check_graph:
        check_task_on_graph(cfg, task)
        check_task_scores(cfg, task)
    return task


def check_task_scores(cfg: Config, task: Task) -> None:
    """ConfigError when the rewards are to come from simulator state (``hil.reward.source:
    sim_state`` on the stand-in) but the task has no ``success`` to judge them with."""
    if (type(task).success is Task.success and cfg.hil.reward.source == "sim_state"
            and simulator_state_available(cfg)):
        raise ConfigError(
            f"task.name {cfg.task.name!r}: {type(task).__name__} does not implement "
            f"success(snap), which hil.reward.source 'sim_state' needs (rewards from "
            f"simulator state); expected a success(snap) -> bool method, or rewards from "
            f"another source (hil.reward.source: classifier, human or topic)")


def check_task_on_graph(cfg: Config, task: Task) -> None:
    """ConfigError when ``task`` reads simulator-only state the configured graph lacks; a
    warning when ``hil.reset.mode`` does less than ``task.reset_strategy`` on a robot."""
    if simulator_state_available(cfg):
        return
    if task.privileged:
        hint = (" (the 'object' group of task.observations: remove it)"
                if "object" in task.observation_space.spaces else "")
        raise ConfigError(
            f"task {cfg.task.name!r} reads simulator-only state {sorted(task.privileged)}"
            f"{hint}, but {_no_simulator_state_reason(cfg)} and nothing there provides it; "
            f"expected a task without simulator state, or driver.adapter 'sim' with "
            f"sim.rehearsal false")
    if cfg.hil.reset.mode not in _RESET_MODES_FOR[task.reset_strategy]:
        import warnings
        warnings.warn(f"task {cfg.task.name!r} declares reset_strategy "
                      f"{task.reset_strategy!r}, but hil.reset.mode is {cfg.hil.reset.mode!r}: "
                      f"on a robot the scene will not be reset as the task needs (use one of "
                      f"{list(_RESET_MODES_FOR[task.reset_strategy])})", stacklevel=3)


@register_task("pick_cube")
class PickCubeTask(Task):
    """Pick the cube up and lift it ``task.lift_height`` above the table: the base class's
    observations and actions, success and a dense reward from simulator state, a scripted
    expert, and a person re-arranging the cube between episodes on a robot."""

    reset_strategy = "move_then_human"

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

    def human_view(self, snap: Snapshot, start: Snapshot) -> HumanView:
        """Distance: TCP to cube. Settled: the cube is held up (lifted, near, fingers closed);
        drift: the cube pushed ``hil.sim_human.cube_moved`` off its start while not held;
        done: the cube held ``hil.sim_human.release_lift`` above its start."""
        if snap.object_pos is None or start.object_pos is None:
            raise ValueError("the simulated human needs the object pose (/sim/object_pose)")
        h = self.cfg.hil.sim_human
        cube, start_cube = np.asarray(snap.object_pos, float), np.asarray(start.object_pos, float)
        distance = float(np.linalg.norm(cube - snap.ee_pos))
        lift = float(cube[2] - start_cube[2])
        closed = snap.gripper_width < self.cfg.robot.gripper_max_width - 0.01
        held = bool(lift > 0.01 and distance < 0.04 and closed)
        pushed = float(np.linalg.norm((cube - start_cube)[:2]))
        return HumanView(
            distance, settled=held,
            drift=f"cube pushed {pushed:.3f} m off its start" if not held and pushed > h.cube_moved
            else "",
            done=f"corrected: cube held {lift:.3f} m up" if held and lift >= h.release_lift else "")

    def expert(self, noise: float = 0.0, rng: np.random.Generator | None = None):
        """The scripted pick expert (it reads the simulator's cube pose)."""
        from robot_rl.envs.expert import PickExpert

        return PickExpert(self.task.max_step_pos, self.task.lift_height, noise=noise, rng=rng,
                          task=self)
