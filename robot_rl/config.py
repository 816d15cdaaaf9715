"""The one configuration schema: typed dataclasses loaded from YAML.

The CLI, the launch files and every node read the same ``Config``. Nodes receive it as ROS
parameters: ``config_file`` (a YAML path) plus optional dotted overrides such as
``sim.rate:=max``; ``load_config`` applies both, so a value means the same thing everywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from robot_rl import topics as T
from robot_rl.deploy.config import DeployConfig
from robot_rl.deploy.safety import SafetyConfig
from robot_rl.hil.config import HILConfig, check_reward_source
from robot_rl.learning.config import ActorConfig, LearnerConfig, RLPDConfig
from robot_rl.paths import shared_file
from robot_rl.sensors.config import CameraConfig, TactileConfig
from robot_rl.sim.randomization_config import PhysicsConfig, RandomizationConfig
from robot_rl.schema import (ConfigError, FieldError, check, deep_merge, from_dict, require,
                             require_positive, to_dict, unflatten)

PANDA_ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]


@dataclass
class RobotConfig:
    """The robot description; joints are addressed by these names, never by index."""
    urdf: str = "example-robot-data:panda"  # a file path or "example-robot-data:<robot>"
    arm_joints: list[str] = field(default_factory=lambda: list(PANDA_ARM_JOINTS))
    gripper_joints: list[str] = field(
        default_factory=lambda: ["panda_finger_joint1", "panda_finger_joint2"])
    base_frame: str = "panda_link0"
    ee_frame: str = "panda_hand_tcp"
    home: list[float] = field(
        default_factory=lambda: [0.0, -0.4, 0.0, -2.4, 0.0, 2.0, 0.785])
    gripper_max_width: float = 0.08   # fully open distance between the fingers, m
    gripper_force: float = 70.0       # continuous grasp force of the Panda hand, N
    # A Franka's torque interface adds g(q) itself: the controller must then not add it again.
    # The MuJoCo stand-in does not (false).
    hardware_compensates_gravity: bool = False
    # N m per arm joint; empty: the URDF's effort limits.
    effort_limits: list[float] = field(default_factory=list)

    def validate(self) -> None:
        check(len(self.home) == len(self.arm_joints),
              f"home has {len(self.home)} values, expected one per arm joint "
              f"({len(self.arm_joints)})")
        check(len(set(self.arm_joints)) == len(self.arm_joints), "arm_joints has duplicates")
        check(self.gripper_max_width > 0, "gripper_max_width must be > 0")
        check(not self.effort_limits or (len(self.effort_limits) == len(self.arm_joints)
                                         and all(e > 0 for e in self.effort_limits)),
              f"effort_limits has {len(self.effort_limits)} values {self.effort_limits}; "
              f"expected [] (URDF limits) or one positive value per arm joint "
              f"({len(self.arm_joints)})")
        require_positive(self, "gripper_force")


@dataclass
class ControllerConfig:
    """Cartesian impedance controller, run at the physics/hardware rate."""
    stiffness_pos: float = 800.0      # N/m
    stiffness_rot: float = 60.0       # N m/rad
    damping_ratio: float = 1.0
    # Reference limiting: the pose error fed to the spring is clipped, so a far-away or
    # blocked target can never demand more than stiffness * max_error of force.
    max_pos_error: float = 0.03       # m  -> at most 24 N from the position spring
    max_rot_error: float = 0.3        # rad
    nullspace_stiffness: float = 5.0  # N m/rad toward the home posture
    joint_damping: float = 2.0        # N m s/rad on every joint, for the nullspace motion
    workspace_min: list[float] = field(default_factory=lambda: [0.25, -0.35, 0.01])
    workspace_max: list[float] = field(default_factory=lambda: [0.75, 0.35, 0.55])
    joint_limit_margin: float = 0.05  # rad kept away from the URDF limits
    joint_limit_stiffness: float = 50.0  # N m/rad repulsion inside the margin
    joint_stiffness: float = 120.0    # N m/rad, joint-target mode
    max_joint_error: float = 0.3      # rad: joint-target reference limiting
    # Joint targets are approached along the straight joint-space path (the one the workspace
    # box is checked on) at this max-abs joint speed and acceleration.
    joint_path_speed: float = 1.0     # rad/s
    joint_path_accel: float = 4.0     # rad/s^2
    # Largest change of commanded torque per joint, N m/s, applied every control period
    # (Franka's interface rejects > 1000 N m/s).
    max_torque_rate: float = 1000.0

    def validate(self) -> None:
        for name in ("stiffness_pos", "stiffness_rot", "max_pos_error", "max_rot_error",
                     "max_torque_rate", "joint_path_speed", "joint_path_accel"):
            check(getattr(self, name) > 0, f"{name} must be > 0")
        check(len(self.workspace_min) == 3 and len(self.workspace_max) == 3,
              "workspace_min and workspace_max need 3 values (x, y, z in m)")
        check(all(lo < hi for lo, hi in zip(self.workspace_min, self.workspace_max)),
              f"workspace_min {self.workspace_min} must be below workspace_max "
              f"{self.workspace_max} on every axis")
        require_positive(self, "joint_stiffness", "max_joint_error")
        require(self, 0, "damping_ratio", "nullspace_stiffness", "joint_damping",
                "joint_limit_margin", "joint_limit_stiffness")


@dataclass
class DriverConfig:
    """How the joint driver reaches the arm: the MuJoCo stand-in, or ros2_control topics."""
    adapter: Literal["sim", "ros2_control"] = "sim"
    # ros2_control: joint_state_broadcaster output and a forward_command_controller with the
    # effort interface of the arm joints (order given by the controller's `joints` list, which
    # must be robot.arm_joints), plus a forward position controller for the gripper.
    hardware_state_topic: str = T.HARDWARE_JOINT_STATES
    effort_command_topic: str = T.EFFORT_COMMANDS
    gripper_command_topic: str = T.GRIPPER_COMMANDS
    loop_rate_hz: float = 1000.0      # impedance loop on the driver's own thread
    publish_rate_hz: float = 100.0    # JointState / end-effector publication (real hardware)
    state_timeout: float = 0.05       # s without hardware state -> hold and report
    # position_controller: a forward position controller on gripper_command_topic (one opening
    # per finger joint). franka_gripper: franka_gripper's move/grasp/homing action servers.
    gripper_backend: Literal["position_controller", "franka_gripper"] = "position_controller"
    franka_gripper_namespace: str = "/franka_gripper"
    gripper_speed: float = 0.1        # m/s, franka_gripper move/grasp speed
    grasp_epsilon: float = 0.08       # m, franka_gripper grasp tolerance (inner = outer)

    def validate(self) -> None:
        check(self.loop_rate_hz > 0 and self.publish_rate_hz > 0, "rates must be > 0")
        check(self.gripper_speed > 0, "gripper_speed must be > 0 m/s")
        require_positive(self, "state_timeout")


@dataclass
class SimConfig:
    scene: str = "pick_cube"          # a scene in sim/ or a path to an MJCF file
    physics_dt: float = 0.002         # s; the controller runs every physics step
    # lockstep: advance one control period per command (faster than real time when the
    # consumer keeps up); realtime: wall clock * real_time_factor; max: free-running.
    rate: Literal["lockstep", "realtime", "max"] = "lockstep"
    real_time_factor: float = 1.0
    lockstep_timeout: float = 0.5     # s of wall time before the sim advances without a command
    object_x_range: list[float] = field(default_factory=lambda: [0.45, 0.60])
    object_y_range: list[float] = field(default_factory=lambda: [-0.12, 0.12])
    object_yaw_range: list[float] = field(default_factory=lambda: [-0.3, 0.3])
    seed: int = 0
    # Hardware dress rehearsal (docs/rehearsal.md): publish nothing under /sim/, serve no
    # /scene/reset (the reset node moves the arm), and host a simulated operator that drives the
    # joy device topic: "demonstrate" every episode with the scripted expert, "correct" the
    # policy like hil.sim_human, or "off". It re-arranges the cube when the reset node waits.
    rehearsal: bool = False
    operator: Literal["off", "demonstrate", "correct"] = "correct"
    # demonstrate: every Nth episode (0: never) the operator misses on purpose, as a person
    # recording classifier data does: closes beside the cube, lifts, presses failure. The
    # recorder discards the episode; its frames are labelled not-success (hard negatives).
    operator_miss_every: int = 0
    # Per-episode domain randomisation and solver settings (robot_rl/sim/randomization.py).
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)

    def validate(self) -> None:
        check(0 < self.physics_dt <= 0.01, "physics_dt must be in (0, 0.01] s")
        check(self.real_time_factor > 0, "real_time_factor must be > 0")
        require_positive(self, "lockstep_timeout")
        check(self.operator_miss_every >= 0, "operator_miss_every must be >= 0 (0: never)")
        for name in ("object_x_range", "object_y_range", "object_yaw_range"):
            lo_hi = getattr(self, name)
            check(len(lo_hi) == 2 and lo_hi[0] <= lo_hi[1], f"{name} needs [low, high]")


def _check_rehearsal(cfg: Config) -> None:
    """sim.rehearsal runs the graph as on hardware, so it needs what hardware needs."""
    check(cfg.driver.adapter == "sim", f"sim.rehearsal is true but driver.adapter is "
          f"{cfg.driver.adapter!r}: the rehearsal is a mode of the MuJoCo stand-in (adapter 'sim')")
    check(cfg.hil.device == "joy", f"sim.rehearsal is true but hil.device is {cfg.hil.device!r}: "
          f"the simulated operator drives the joy device topic (hil.joy.topic), so set "
          f"hil.device to joy")
    check(cfg.hil.reset.mode == "move_then_human", f"sim.rehearsal is true but hil.reset.mode is "
          f"{cfg.hil.reset.mode!r}: the reset node must move the arm home and wait for the "
          f"operator to re-arrange the scene, so set hil.reset.mode to move_then_human")


@dataclass
class TaskConfig:
    # a registered task, "package.module:ClassName" or a robot_rl.tasks entry point
    # (robot_rl/envs/task.py)
    name: str = "pick_cube"
    max_episode_steps: int = 100
    lift_height: float = 0.08         # m the cube must rise above its resting height
    action_space: Literal["xyz_gripper", "xyz_yaw_gripper"] = "xyz_gripper"
    max_step_pos: float = 0.03        # m of end-effector target motion per step at |a| = 1
    max_step_yaw: float = 0.2         # rad per step at |a| = 1
    observations: list[str] = field(default_factory=lambda: ["state", "tactile"])
    # sparse: 1 on success (SERL). dense: a per-step cost that shrinks with progress (reach,
    # grasp, lift; simulator state), 0 and terminal on success, so finishing early always pays.
    reward: Literal["sparse", "dense"] = "sparse"
    # SERL's relative frame: TCP position and velocity observed, and the action's translation
    # applied, in the frame of the episode's start TCP pose (the start is 0).
    relative_frame: bool = False
    # Free-form parameters of a user's task (read by it as cfg.task.params; docs/tasks.md).
    params: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        check(self.max_episode_steps > 0, "max_episode_steps must be > 0")
        require_positive(self, "lift_height", "max_step_pos", "max_step_yaw")
        allowed = {"state", "tactile", "images", "object"}
        unknown = set(self.observations) - allowed
        check(not unknown, f"unknown observation group(s) {sorted(unknown)}; "
                           f"expected some of {sorted(allowed)}")


@dataclass
class SecurityConfig:
    """Authentication of learning traffic (robot_rl/security.py, docs/security.md)."""
    # Run keystore (`robot-rl keys init`): the learner signs weights, actors sign transitions,
    # both refuse what a key of the keystore did not sign. "": unsigned, unless `auto` applies.
    keystore: str = ""
    # `robot-rl up --profile train` and `robot-rl demo` with keystore "": create (or reuse)
    # <run-dir>/keys and run every node with it. false: run unsigned (not recommended).
    auto: bool = True
    # Services that move the robot or change the controller's state (/scene/reset,
    # /controller/engage|disengage|deactivate|reset_estop, /scene/confirm) answer only calls
    # announced by a token an operator key signed (`robot-rl call`). /controller/estop stays open.
    restrict_commands: bool = False
    command_max_age_s: float = 5.0    # a token is valid this long after it was issued

    def validate(self) -> None:
        require_positive(self, "command_max_age_s")
        if self.restrict_commands and not (self.keystore or self.auto):
            raise FieldError("restrict_commands", "needs security.keystore (the operator keys "
                                                  "that may call the restricted services)")


@dataclass
class RecordingConfig:
    """MCAP recording of the topic contract (``robot-rl record``, ``--record``); docs/data.md."""
    path: str = ""                    # output .mcap; "" -> <run dir>/recording_<UTC time>.mcap
    topics: list[str] = field(default_factory=list)   # empty: every topic of the contract
    exclude: list[str] = field(default_factory=list)  # topics left out of the recording
    cameras: bool = True              # record /camera/<n>/image_raw and camera_info
    camera_rate_hz: float = 0.0       # 0: every frame; else at most this many per camera per s
    camera_downscale: int = 1         # integer factor: 2 records 128x128 frames as 64x64
    compression: Literal["zstd", "lz4", "none"] = "zstd"
    chunk_kib: int = 1024             # a killed recorder loses at most the chunk being filled
    # The recorder's CPU priority (every thread, DDS ones included): on a small machine the
    # control loop gets the CPU first, and the recorder catches up from its queues.
    nice: int = 10

    def validate(self) -> None:
        check(self.camera_rate_hz >= 0, "camera_rate_hz must be >= 0 (0: every frame)")
        check(self.camera_downscale >= 1, "camera_downscale must be an integer >= 1")
        check(self.chunk_kib >= 1, "chunk_kib must be >= 1")
        check(0 <= self.nice <= 19, "nice must be in [0, 19] (0: normal priority)")
        check(not self.path or self.path.endswith(".mcap"),
              f"path {self.path!r} must end in .mcap")


@dataclass
class ViewConfig:
    """``robot-rl view``: a live Rerun view of a running graph, served on localhost."""
    host: str = "127.0.0.1"           # the web viewer and its data stream stay on this machine
    web_port: int = 9090              # the page: http://<host>:<web_port>/
    grpc_port: int = 9876             # the data stream the page reads
    camera_rate_hz: float = 5.0       # images and tactile heatmaps per sensor per s (0: all)
    robot_rate_hz: float = 20.0       # robot pose updates per s (0: every /joint_states)
    memory_limit: str = "512MiB"      # the viewer server drops the oldest data beyond this
    save_rrd: str = ""                # also write everything shown to this .rrd file ("" -> no)

    def validate(self) -> None:
        check(0 < self.web_port < 65536 and 0 < self.grpc_port < 65536, "ports must be 1..65535")
        check(self.web_port != self.grpc_port, "web_port and grpc_port must differ")
        check(self.camera_rate_hz >= 0 and self.robot_rate_hz >= 0, "rates must be >= 0 (0: all)")
        check(not self.save_rrd or self.save_rrd.endswith(".rrd"),
              f"save_rrd {self.save_rrd!r} must end in .rrd")


@dataclass
class Config:
    robot: RobotConfig = field(default_factory=RobotConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    driver: DriverConfig = field(default_factory=DriverConfig)
    # The one control rate: the policy / environment step, the rate exported in a model's
    # metadata, the deployed controller's loop and its safety layer (safety.control_rate_hz is
    # derived from it; see _one_control_rate).
    control_rate_hz: float = 10.0
    cameras: list[CameraConfig] = field(default_factory=lambda: [
        CameraConfig(name=name, width=128, height=128, fps=10) for name in ("front", "wrist")])
    tactile: list[TactileConfig] = field(default_factory=lambda: [
        TactileConfig(name=side, shape=(4, 4), fps=10, sim_body=f"panda_{side}finger")
        for side in ("left", "right")])
    sim: SimConfig = field(default_factory=SimConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    agent: RLPDConfig = field(default_factory=RLPDConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    hil: HILConfig = field(default_factory=HILConfig)
    safety: SafetyConfig = field(default_factory=lambda: SafetyConfig(
        command_mode="ee_position", control_rate_hz=10.0,
        workspace_min=(0.25, -0.35, 0.01), workspace_max=(0.75, 0.35, 0.55),
        extra_min=(0.0,), extra_max=(0.08,),  # extra: gripper opening, m
        ee_speed_max=0.35))  # above the task's 3 cm per 0.1 s step, so it clips only faults
    deploy: DeployConfig = field(default_factory=DeployConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    view: ViewConfig = field(default_factory=ViewConfig)

    def __post_init__(self) -> None:
        rate = self.control_rate_hz
        if isinstance(rate, (int, float)) and 0 < rate <= 1000 and self.safety.control_rate_hz != rate:
            self.safety = replace(self.safety, control_rate_hz=float(rate))

    def validate(self) -> None:
        check(0 < self.control_rate_hz <= 1000, "control_rate_hz must be in (0, 1000]")
        check(not (self.robot.hardware_compensates_gravity and self.driver.adapter == "sim"),
              "robot.hardware_compensates_gravity is true but driver.adapter is 'sim': the MuJoCo "
              "stand-in does not compensate gravity; set it false for the sim (true is for a "
              "Franka on ros2_control)")
        if self.sim.rehearsal:
            _check_rehearsal(self)
        for group in ("cameras", "tactile"):
            names = [item.name for item in getattr(self, group)]
            check(len(set(names)) == len(names), f"{group}: names must be unique, got {names}")
        rehearsal = getattr(self.sim, "rehearsal", False)  # sim.rehearsal: the stand-in as hardware
        where = ("sim.rehearsal is true" if rehearsal
                 else f"driver.adapter is {self.driver.adapter!r}")
        check("object" not in self.task.observations or (self.driver.adapter == "sim"
                                                         and not rehearsal),
              f"task.observations has 'object' (the simulator's cube pose), but {where}: nothing "
              f"publishes it there; remove 'object' from task.observations (or use "
              f"driver.adapter 'sim' without sim.rehearsal)")
        check_reward_source(self)

    def agent_settings(self) -> RLPDConfig:
        """``agent`` with its preset applied for this run (``auto``: the demonstrations' recipe
        when ``learner.demos`` is set). The learner, the actors and export build from this."""
        return self.agent.resolved(with_demos=bool(self.learner.demos))


def default_config_path() -> Path:
    return shared_file("config", "default.yaml")


def load_config(path: str | os.PathLike | None = None,
                overrides: dict | None = None) -> Config:
    """Load a YAML file (or the packaged default) and apply dotted-key or nested overrides."""
    data: dict = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; expected a YAML file "
                              f"(the default is {default_config_path()})")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level, "
                              f"found {type(data).__name__}")
    if overrides:
        dotted = {k: v for k, v in overrides.items() if "." in k}
        nested = {k: v for k, v in overrides.items() if "." not in k}
        data = deep_merge(deep_merge(data, nested), unflatten(dotted))
    # Merge onto the full defaults of Config, so a partial section (or a dotted override such
    # as safety.ee_speed_max) keeps the other values Config chose, not the section class's own.
    where = f" (in {path})" if path else ""
    try:
        data = deep_merge(to_dict(Config()), _one_control_rate(data))
        return from_dict(Config, data)
    except ConfigError as exc:
        raise ConfigError(f"{exc}{where}") from None


def save_config(config: Config, path: str | os.PathLike) -> None:
    Path(path).write_text(yaml.safe_dump(config_dict(config), sort_keys=False))


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_dict(config), sort_keys=False)


#: Keys that used to set the control rate besides ``control_rate_hz`` (section, key).
DERIVED_RATE_KEYS = (("deploy", "rate_hz"), ("safety", "control_rate_hz"))


def _one_control_rate(data: dict) -> dict:
    """``data`` without the keys that repeat the control rate. Equal to ``control_rate_hz``
    (a file written before it was the one setting): dropped; different: ConfigError naming the
    key, since a controller or safety layer at another rate than the policy was trained at is
    never what a user wants."""
    rate = data.get("control_rate_hz", Config.control_rate_hz)
    for section, key in DERIVED_RATE_KEYS:
        values = data.get(section)
        if not isinstance(values, dict) or key not in values:
            continue
        value = values[key]
        try:
            same = float(value) == float(rate)
        except (TypeError, ValueError):
            same = False
        if not same:
            raise ConfigError(
                f"{section}.{key} is {value!r} but control_rate_hz is {rate!r}: the control rate is "
                f"set once, by control_rate_hz (the policy's step, the deployed controller's loop and "
                f"its safety layer all run at it); remove {section}.{key}")
        data = {**data, section: {k: v for k, v in values.items() if k != key}}
    return data


def config_dict(config: Config) -> dict:
    """The configuration as YAML-ready data, without derived keys (safety.control_rate_hz), so
    a saved file changes its control rate by ``control_rate_hz`` alone."""
    data = to_dict(config)
    data["safety"].pop("control_rate_hz", None)
    return data
