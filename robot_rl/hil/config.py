"""Configuration of the human-in-the-loop parts: intervention devices and their mapping to the
policy's action, the simulated human, the reset node and the reward node.

Every scalar here is also a ROS parameter of the HIL nodes (``hil.device:=gamepad``,
``hil.reset.service:=/robot_reset``...). See docs/hil.md for what each setting does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from robot_rl import topics as T
from robot_rl.schema import ConfigError, FieldError, check, require, require_positive

DEVICES = ("sim_human", "spacemouse", "joy", "gamepad", "keyboard", "none")


@dataclass
class MappingConfig:
    """Device axes/buttons -> policy action. Four action axes: dx, dy, dz, dyaw (dyaw is only
    used with ``task.action_space: xyz_yaw_gripper``)."""
    axes: list[int] = field(default_factory=lambda: [0, 1, 2, 5])  # device axis per action axis; -1: none
    signs: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])
    # Dead-man: intervention only while this button is held. -1: while any mapped axis is
    # deflected beyond the deadzone or a gripper button is pressed (devices with few buttons).
    deadman_button: int = 0
    release_delay: float = 0.0        # s the intervention stays active after the dead-man lets go
    close_button: int = 1             # -> gripper action +1 while pressed
    open_button: int = 2              # -> gripper action -1 while pressed
    confirm_button: int = -1          # -> Joy buttons[1] (reset node's "scene is ready")
    success_button: int = -1          # -> Joy buttons[2] (reward labelling: "this is success")
    failure_button: int = -1          # -> Joy buttons[3] (human reward label: "this failed")

    def validate(self) -> None:
        for name in ("axes", "signs", "scale"):
            check(len(getattr(self, name)) == 4,
                  f"{name} needs 4 values (dx, dy, dz, dyaw), found {len(getattr(self, name))}")
        check(all(-1 <= a < 6 for a in self.axes), f"axes {self.axes}: each must be -1 or 0..5")
        check(self.release_delay >= 0, "release_delay must be >= 0")


@dataclass
class SpaceMouseConfig:
    path: str = ""                    # hidraw path (hid.enumerate()'s 'path'); "" = first found
    vendor_id: int = 0                # 0: any known 3Dconnexion id
    product_id: int = 0
    full_scale: float = 350.0         # raw counts at full deflection
    # Raw HID frame: +x right, +y toward the user, +z down (into the desk). Defaults: the user
    # stands behind the robot looking along base +x: push away -> +x, left -> +y, lift -> +z,
    # twist counter-clockwise -> +yaw. Two buttons only: motion is the dead-man (SERL style).
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(
        axes=[1, 0, 2, 5], signs=[-1.0, -1.0, -1.0, -1.0], deadman_button=-1,
        release_delay=0.3, close_button=0, open_button=1))

    def validate(self) -> None:
        require_positive(self, "full_scale")


@dataclass
class GamepadConfig:
    index: int = 0                    # SDL joystick index
    # Xbox-style pad through SDL's joystick API (Linux xpad order): axes 0 LX, 1 LY, 2 LT,
    # 3 RX, 4 RY, 5 RT (stick up/left = -1); buttons 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB, 6 Back,
    # 7 Start. Hold LB; left stick moves in x/y, right stick y moves z, right stick x yaws.
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(
        axes=[1, 0, 4, 3], signs=[-1.0, -1.0, -1.0, -1.0], deadman_button=4,
        close_button=0, open_button=1, confirm_button=7, success_button=3, failure_button=2))


@dataclass
class JoyConfig:
    topic: str = T.JOY                # sensor_msgs/Joy from the ROS `joy` node
    timeout: float = 0.5              # s without a message -> the device is reported stale

    def validate(self) -> None:
        require_positive(self, "timeout")
    # ROS joy_node reports stick up/left as +1; same button order as the gamepad.
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(
        axes=[1, 0, 4, 3], signs=[1.0, 1.0, 1.0, 1.0], deadman_button=4,
        close_button=0, open_button=1, confirm_button=7, success_button=3, failure_button=2))


@dataclass
class KeyboardConfig:
    # pygame key names (pygame.key.key_code), a (negative, positive) pair per device axis:
    # axis 0 forward/back, 1 left/right, 2 up/down, 3-4 unused, 5 yaw. "" = no key.
    axis_keys: list[str] = field(default_factory=lambda: [
        "down", "up", "right", "left", "page down", "page up", "", "", "", "", "e", "q"])
    # Device buttons in this order; the mapping refers to them by index.
    button_keys: list[str] = field(default_factory=lambda: ["space", "c", "o", "return", "s", "f"])
    window: bool = True               # open a small pygame window (it must have focus)
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(
        axes=[0, 1, 2, 5], deadman_button=0, close_button=1, open_button=2, confirm_button=3,
        success_button=4, failure_button=5))

    def validate(self) -> None:
        check(len(self.axis_keys) == 12, "axis_keys needs 12 names (negative, positive for "
                                         "each of the 6 device axes; \"\" for none)")


@dataclass
class SimHumanConfig:
    """The scripted expert as a human that corrects the policy when it drifts off the task."""
    prob: float = 1.0                 # probability per episode that the human watches at all
    grace_steps: int = 3              # steps after the episode starts before judging
    no_progress_steps: int = 15       # K: no approach progress for K steps -> take over
    progress_eps: float = 0.02        # m the TCP must gain toward the cube over K steps
    near_radius: float = 0.02         # m: inside this the TCP is "at the cube" (no progress test)
    region_margin: float = 0.08       # m beyond the episode's initial TCP-cube distance -> drift
    cube_moved: float = 0.04          # m the cube may be pushed (while not held) before drift;
    # a grasp that centres the cube between the fingers slides it 1-2 cm, which is no mistake
    max_steps: int = 80               # M: release after this many steps of correction
    release_lift: float = 0.09        # m above its start: cube held that high -> release
    cooldown_steps: int = 5           # after a release, steps before judging again
    noise: float = 0.0                # Gaussian noise on the expert's motion
    seed: int = 0

    def validate(self) -> None:
        check(0.0 <= self.prob <= 1.0, "prob must be in [0, 1]")
        check(self.no_progress_steps > 0 and self.max_steps > 0, "step counts must be > 0")
        require(self, 0, "grace_steps", "cooldown_steps", "near_radius", "noise")
        require_positive(self, "progress_eps", "region_margin", "cube_moved", "release_lift")


@dataclass
class ResetConfig:
    """The reset node for real robots (the MuJoCo stand-in serves /scene/reset itself)."""
    service: str = T.SCENE_RESET
    confirm_service: str = T.SCENE_CONFIRM
    # move: to home + random offset; human: wait for a human to reset the scene and confirm;
    # move_then_human: both.
    mode: Literal["move", "human", "move_then_human"] = "move"
    home_position: list[float] = field(default_factory=list)  # x, y, z; [] = FK of robot.home
    home_rpy: list[float] = field(default_factory=list)       # base frame; [] = FK of robot.home
    x_range: list[float] = field(default_factory=lambda: [-0.03, 0.03])   # m offsets
    y_range: list[float] = field(default_factory=lambda: [-0.03, 0.03])
    yaw_range: list[float] = field(default_factory=lambda: [-0.1, 0.1])   # rad about base z
    clearance: float = 0.05           # m straight up first (never drag over the table)
    max_speed: float = 0.15           # m/s of the interpolated target
    max_yaw_rate: float = 0.5         # rad/s
    tolerance: float = 0.01           # m: converged
    yaw_tolerance: float = 0.05       # rad
    open_gripper: bool = True
    hooks: list[str] = field(default_factory=list)  # names in robot_rl.hil.reset.RESET_HOOKS
    timeout: float = 20.0             # s for the whole motion part
    confirm_timeout: float = 120.0    # s the human has to confirm
    seed: int = 0

    def validate(self) -> None:
        check(len(self.home_position) in (0, 3), "home_position needs [] or [x, y, z]")
        check(len(self.home_rpy) in (0, 3), "home_rpy needs [] or [roll, pitch, yaw]")
        for name in ("x_range", "y_range", "yaw_range"):
            lo_hi = getattr(self, name)
            check(len(lo_hi) == 2 and lo_hi[0] <= lo_hi[1], f"{name} needs [low, high]")
        check(self.max_speed > 0 and self.max_yaw_rate > 0, "speeds must be > 0")
        check(self.tolerance > 0 and self.timeout > 0 and self.confirm_timeout > 0,
              "tolerance and timeouts must be > 0")
        require_positive(self, "yaw_tolerance")
        require(self, 0, "clearance")
        for name in ("service", "confirm_service"):
            if not getattr(self, name).startswith("/"):
                raise FieldError(name, f"must be an absolute service name like /scene/reset, "
                                       f"got {getattr(self, name)!r}")


REWARD_SOURCES = ("sim_state", "classifier", "human", "topic")


@dataclass
class RewardConfig:
    """Where task success (and so the reward) comes from (docs/hil.md, "Reward sources"):

    * ``sim_state``: the task's test on simulator state (``/sim/object_pose``); simulator only.
    * ``classifier``: the reward node's learned classifier on camera frames, read as
      std_msgs/Bool on ``success_topic``.
    * ``human``: the operator's success / failure buttons (Joy ``buttons[2]`` / ``buttons[3]``
      on ``hil.topic``).
    * ``topic``: any node publishing std_msgs/Bool on ``success_topic``.

    With classifier and topic an episode succeeds after ``consecutive`` True messages in a row
    received during it; with human, once the success button is held through ``consecutive``
    control steps in a row (1: any press)."""
    source: Literal["sim_state", "classifier", "human", "topic"] = field(
        default="sim_state", metadata={"renamed_values": {"scripted": "sim_state"}})
    model: str = ""                   # folder written by `robot-rl reward-classifier train`
    threshold: float = 0.5            # success when the probability >= threshold
    consecutive: int = 1              # True messages in a row that make an episode a success
    # classifier/topic: s a step waits for a message received after its command (the answer to
    # its frame; std_msgs/Bool has no stamp); 0: take what has arrived (it may come steps late)
    wait_s: float = 0.0
    success_topic: str = T.TASK_SUCCESS
    reward_topic: str = T.TASK_REWARD
    probability_topic: str = T.TASK_SUCCESS_PROBABILITY
    record_dir: str = ""              # non-empty: record labelled frames (.npz) instead of serving

    def validate(self) -> None:
        check(0.0 < self.threshold < 1.0, "threshold must be in (0, 1)")
        require_positive(self, "consecutive")
        require(self, 0, "wait_s")


def simulator_state_available(cfg) -> bool:
    """Whether the graph's backend offers simulator state (``/sim/...``): the MuJoCo stand-in
    (``driver.adapter: sim``), except in its hardware dress rehearsal (``sim.rehearsal``)."""
    return cfg.driver.adapter == "sim" and not getattr(cfg.sim, "rehearsal", False)


def check_reward_source(cfg) -> None:
    """Refuse ``hil.reward.source: sim_state`` on a graph without simulator state."""
    if cfg.hil.reward.source != "sim_state" or simulator_state_available(cfg):
        return
    why = ("sim.rehearsal is true (the stand-in behaves like hardware)"
           if cfg.driver.adapter == "sim" else f"driver.adapter is {cfg.driver.adapter!r}")
    raise ConfigError(
        f"hil.reward.source is 'sim_state' (success from the simulator's state), but {why}: "
        f"this graph has no simulator state. Set hil.reward.source to one of 'classifier' "
        f"(a trained reward classifier, hil.reward.model), 'human' (the operator's success/"
        f"failure buttons) or 'topic' (any std_msgs/Bool on hil.reward.success_topic)")


@dataclass
class HILConfig:
    device: Literal["sim_human", "spacemouse", "joy", "gamepad", "keyboard", "none"] = "sim_human"
    deadzone: float = 0.05            # device noise below this (of full scale) is ignored
    topic: str = T.INTERVENTION
    rate_hz: float = 0.0              # Joy publication rate; 0: twice control_rate_hz
    frame: Literal["base", "ee"] = "base"  # frame the operator moves in (ee: tool frame)
    device_rpy: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # device -> frame
    reopen_s: float = 2.0             # retry opening a missing device this often
    spacemouse: SpaceMouseConfig = field(default_factory=SpaceMouseConfig)
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)
    joy: JoyConfig = field(default_factory=JoyConfig)
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)
    sim_human: SimHumanConfig = field(default_factory=SimHumanConfig)
    reset: ResetConfig = field(default_factory=ResetConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def validate(self) -> None:
        check(0.0 <= self.deadzone < 1.0, "deadzone must be in [0, 1)")
        check(self.rate_hz >= 0, "rate_hz must be >= 0")
        check(len(self.device_rpy) == 3, "device_rpy needs [roll, pitch, yaw] in rad")
        check(self.reopen_s > 0, "reopen_s must be > 0")
