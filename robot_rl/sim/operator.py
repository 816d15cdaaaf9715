"""The simulated operator of the hardware dress rehearsal (``sim.rehearsal``), ROS-free.

It stands where a person stands in front of a real robot: it sees the world (the MuJoCo state,
read in the simulator's own process, never over DDS), holds a gamepad, and puts the cube back
by hand. Everything it does reaches the robot stack the way a person's actions would:

* its hands on the pad become a raw ``sensor_msgs/Joy`` in the joy device's own layout
  (:class:`JoyLayout` inverts ``hil.joy.mapping``), which the intervention node maps like any
  gamepad's;
* ``demonstrate``: it drives every episode with the scripted pick expert (dead-man held);
  ``correct``: it watches the policy like :class:`~robot_rl.hil.sim_human.SimHuman` and takes
  over when it drifts; ``off``: it only resets the scene and labels success;
* ``demonstrate`` with ``sim.operator_miss_every`` N: every Nth episode a deliberate miss (the
  expert aims beside the cube, closes on air, lifts, then the failure button): labelled
  not-success frames of what a policy's failures look like, for the reward classifier;
* while the world shows the task's success it holds the pad's success button (labels for the
  reward classifier, the ``human`` reward source, the demo recorder);
* when the reset node says it awaits confirmation (``/scene/reset_state``) it re-arranges the
  cube (a random pose within ``sim.object_*_range``) and presses the confirm button.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_rl.envs.expert import PickExpert
from robot_rl.envs.task import CUBE_HALF, Snapshot
from robot_rl.hil.mapping import quat_matrix, rpy_matrix

# sensor_msgs/Joy of an Xbox-style pad from the ROS joy node: 8 axes, 11 buttons.
JOY_AXES = 8
JOY_BUTTONS = 11
# m in front of / behind the cube's centre (the fingers close across y): they close on air,
# clear of the cube's faces and of its corners at any yaw
MISS_OFFSET = 0.06


class JoyLayout:
    """An action in the policy's frame -> the raw Joy that ``ActionMapper`` maps back to it.

    Inverts, in reverse order: the gripper buttons, the frame rotation (``hil.frame: ee`` needs
    the TCP orientation), the device rotation (``hil.device_rpy``), the axis pick, sign and
    scale, and the deadzone rescaling. Actions the pad cannot express (beyond full deflection
    after scale, or motion on an axis mapped to -1) are clipped / dropped, as for a person; with
    no dead-man button (``deadman_button: -1``) "held" is the deflection itself, so a held
    command without motion or gripper button reads as released."""

    def __init__(self, mapping, deadzone: float, device_rpy=(0.0, 0.0, 0.0),
                 frame: str = "base", action_dim: int = 4):
        self.m = mapping
        self.deadzone = float(deadzone)
        self.rotation = rpy_matrix(*device_rpy)
        self.frame = frame
        self.action_dim = action_dim
        self.failure_button = int(getattr(mapping, "failure_button", -1))
        buttons = [mapping.deadman_button, mapping.close_button, mapping.open_button,
                   mapping.confirm_button, mapping.success_button, self.failure_button]
        self.n_buttons = max(JOY_BUTTONS, max(buttons) + 1)
        self.n_axes = max(JOY_AXES, max(mapping.axes) + 1)

    @classmethod
    def from_config(cls, cfg) -> "JoyLayout":
        hil = cfg.hil
        dim = 5 if cfg.task.action_space == "xyz_yaw_gripper" else 4
        return cls(hil.joy.mapping, hil.deadzone, hil.device_rpy, hil.frame, dim)

    def _undo_deadzone(self, value: float) -> float:
        if value == 0.0 or self.deadzone <= 0.0:
            return value
        return float(np.sign(value) * (abs(value) * (1.0 - self.deadzone) + self.deadzone))

    def encode(self, action, active: bool, confirm: bool = False, success: bool = False,
               failure: bool = False, ee_quat=None) -> tuple[list[float], list[int]]:
        """(axes, buttons) of the raw Joy."""
        action = np.asarray(action, float)
        translation = action[:3].copy()
        yaw = float(action[3]) if self.action_dim == 5 else 0.0
        if self.frame == "ee":
            if ee_quat is None:
                raise ValueError("hil.frame 'ee': encoding needs the TCP orientation (ee_quat)")
            rot = quat_matrix(ee_quat)
            translation = rot.T @ translation
            yaw = yaw / rot[2, 2] if abs(rot[2, 2]) > 1e-6 else 0.0
        picked = np.concatenate([self.rotation.T @ translation, [yaw]])
        axes = [0.0] * self.n_axes
        for i, device_axis in enumerate(self.m.axes):
            gain = float(self.m.signs[i]) * float(self.m.scale[i])
            if device_axis < 0 or gain == 0.0 or picked[i] == 0.0:
                continue
            raw = float(np.clip(picked[i] / gain, -1.0, 1.0))
            axes[device_axis] = float(np.clip(self._undo_deadzone(raw), -1.0, 1.0))
        buttons = [0] * self.n_buttons

        def press(index: int) -> None:
            if index >= 0:
                buttons[index] = 1

        grip = float(action[-1])
        if grip >= 0.5:
            press(self.m.close_button)
        elif grip <= -0.5:
            press(self.m.open_button)
        if active:
            press(self.m.deadman_button)
        if confirm:
            press(self.m.confirm_button)
        if success:
            press(self.m.success_button)
        if failure:
            press(self.failure_button)
        return axes, buttons


@dataclass
class OperatorAction:
    """What the operator does in one control period."""
    action: np.ndarray                  # policy action frame, [-1, 1]
    active: bool = False                # holds the dead-man
    confirm: bool = False               # presses confirm (the scene is ready)
    success: bool = False               # presses success (the world shows success)
    failure: bool = False               # presses failure (a deliberate miss is over)
    place: tuple[float, float, float] | None = None  # puts the cube at (x, y, yaw) first


class SimulatedOperator:
    """One decision per control period from the world's state (``step``) and the reset node's
    state (``on_reset_state``)."""

    def __init__(self, cfg, task, mode: str, seed: int = 0):
        if mode not in ("off", "demonstrate", "correct"):
            raise ValueError(f"sim.operator {mode!r}: expected off, demonstrate or correct")
        self.cfg = cfg
        self.task = task
        self.mode = mode
        self.action_dim = 5 if cfg.task.action_space == "xyz_yaw_gripper" else 4
        self.rng = np.random.default_rng(seed)
        self.expert = PickExpert(cfg.task.max_step_pos, cfg.task.lift_height,
                                 noise=cfg.hil.sim_human.noise, rng=self.rng)
        self.sim_human = None
        if mode == "correct":
            from robot_rl.hil.sim_human import SimHuman
            self.sim_human = SimHuman.from_config(cfg)
        self.reset_state = ""          # newest /scene/reset_state "state" ("" before any)
        self._placed = False           # the cube was put back during this wait
        self.placements = 0
        self.confirms = 0
        self.successes_seen = 0        # episodes in which the operator pressed success
        self._success_this_episode = False
        self.retries = 0
        self.miss_every = int(getattr(cfg.sim, "operator_miss_every", 0))
        self.episodes = 0              # episodes begun (reset node moved the arm)
        self.misses = 0                # deliberate misses begun
        self._miss_offset: np.ndarray | None = None  # this episode's aim beside the cube

    # -- the reset node ------------------------------------------------------------------------
    def on_reset_state(self, state: str) -> None:
        if state != self.reset_state and state in ("moving", "failed"):
            self._placed = False
            self._success_this_episode = False
            self.expert.reset()
            self.episodes += 1
            self._miss_offset = None
            if self.mode == "demonstrate" and self.miss_every and \
                    self.episodes % self.miss_every == 0:
                self.misses += 1
                self._miss_offset = np.array(
                    [self.rng.choice([-1.0, 1.0]) * MISS_OFFSET, 0.0, 0.0])
            if self.sim_human is not None:
                self.sim_human.reset()
        self.reset_state = state

    def _random_pose(self) -> tuple[float, float, float]:
        sim = self.cfg.sim
        return (float(self.rng.uniform(*sim.object_x_range)),
                float(self.rng.uniform(*sim.object_y_range)),
                float(self.rng.uniform(*sim.object_yaw_range)))

    # -- one control period --------------------------------------------------------------------
    def step(self, snap: Snapshot) -> OperatorAction:
        idle = np.zeros(self.action_dim, np.float32)
        if self.reset_state == "awaiting_confirmation":
            if not self._placed:  # hands on the cube: put it somewhere new, then confirm
                self._placed = True
                self.placements += 1
                self.confirms += 1
                return OperatorAction(idle, confirm=True, place=self._random_pose())
            return OperatorAction(idle, confirm=True)
        if self.reset_state != "idle":  # the reset node moves the arm: hands off
            return OperatorAction(idle)
        success = bool(self.task.success(snap))
        if success and not self._success_this_episode:
            self._success_this_episode = True
            self.successes_seen += 1
        if self.mode == "demonstrate" and self._miss_offset is not None:
            return self._miss(snap, success)
        if self.mode == "demonstrate":
            return OperatorAction(self._demonstrate(snap), active=True, success=success)
        if self.mode == "correct":
            cmd = self.sim_human.step(snap)
            return OperatorAction(np.asarray(cmd.action, np.float32), active=bool(cmd.active),
                                  success=success)
        return OperatorAction(idle, success=success)

    def _miss(self, snap: Snapshot, success: bool) -> OperatorAction:
        aimed = Snapshot(**{**snap.__dict__, "object_pos": snap.object_pos + self._miss_offset})
        action = self.expert.act(aimed, self.action_dim)
        lifted_air = (self.expert.phase == "lift"
                      and snap.ee_pos[2] > CUBE_HALF + 0.5 * self.cfg.task.lift_height + 0.02)
        return OperatorAction(action, active=True, success=success,
                              failure=lifted_air and not success)

    def _demonstrate(self, snap: Snapshot) -> np.ndarray:
        lifted = snap.object_pos[2] - CUBE_HALF > 0.01
        if self.expert.phase == "lift" and snap.gripper_width < 0.005 and not lifted:
            self.expert.reset()  # closed on nothing: open and approach again, as a person would
            self.retries += 1
        return self.expert.act(snap, self.action_dim)
