"""Device reading -> intervention command in the policy's action frame.

Pipeline (docs/hil.md): deadzone on every device axis -> pick, sign and scale one device axis
per action axis (dx, dy, dz, dyaw) -> rotate the translation from the device frame into the
operator frame (``hil.device_rpy``) -> for ``hil.frame: ee`` rotate the tool-frame motion into
the base frame with the current TCP orientation -> clip to [-1, 1] -> gripper buttons to +1
(close) / -1 (open) / 0 (keep) -> dead-man: the command is only *active* while the configured
button is held (or, with ``deadman_button: -1``, while the device is deflected).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_rl.hil.config import MappingConfig
from robot_rl.hil.devices import DeviceState


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll), the ROS/URDF convention."""
    cr, sr, cp, sp, cy, sy = (np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch),
                              np.cos(yaw), np.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def quat_matrix(quat_xyzw) -> np.ndarray:
    x, y, z, w = np.asarray(quat_xyzw, float) / np.linalg.norm(quat_xyzw)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def apply_deadzone(values: np.ndarray, deadzone: float) -> np.ndarray:
    """Zero below the deadzone; rescale the rest so the output is continuous and still reaches
    ±1 at full deflection."""
    values = np.asarray(values, float)
    if deadzone <= 0:
        return values.copy()
    mag = np.abs(values)
    out = np.where(mag < deadzone, 0.0, np.sign(values) * (mag - deadzone) / (1.0 - deadzone))
    return out


@dataclass
class InterventionCommand:
    action: np.ndarray    # (action_dim,) in [-1, 1]: dx, dy, dz[, dyaw], gripper
    active: bool          # the dead-man: the human holds the intervention
    confirm: bool = False  # reset node: "the scene is ready"
    success: bool = False  # reward labelling: "this frame is a success"
    stamp: float = 0.0
    failure: bool = False  # human reward label: "this episode failed"


def _pressed(buttons: list[bool], index: int) -> bool:
    return 0 <= index < len(buttons) and bool(buttons[index])


class ActionMapper:
    """Stateful only for ``release_delay`` (the dead-man's hold-over)."""

    def __init__(self, mapping: MappingConfig, deadzone: float, action_dim: int = 4,
                 device_rpy=(0.0, 0.0, 0.0), frame: str = "base"):
        if action_dim not in (4, 5):
            raise ValueError(f"action_dim {action_dim}: expected 4 (dx, dy, dz, gripper) or 5 "
                             f"(dx, dy, dz, dyaw, gripper)")
        if frame not in ("base", "ee"):
            raise ValueError(f"frame {frame!r}: expected 'base' or 'ee'")
        self.m = mapping
        self.deadzone = deadzone
        self.action_dim = action_dim
        self.rotation = rpy_matrix(*device_rpy)
        self.frame = frame
        self._last_active = -np.inf

    def map(self, state: DeviceState, ee_quat=None) -> InterventionCommand:
        axes6 = np.zeros(6)
        raw = np.asarray(state.axes6, float)[:6]
        axes6[:len(raw)] = raw
        axes6 = apply_deadzone(np.clip(axes6, -1.0, 1.0), self.deadzone)
        picked = np.array([axes6[i] if i >= 0 else 0.0 for i in self.m.axes])
        picked *= np.asarray(self.m.signs, float) * np.asarray(self.m.scale, float)
        translation = self.rotation @ picked[:3]
        yaw = picked[3]
        if self.frame == "ee":
            if ee_quat is None:
                raise ValueError("hil.frame 'ee' needs the current TCP orientation (ee_quat)")
            rot = quat_matrix(ee_quat)
            translation = rot @ translation
            yaw = yaw * rot[2, 2]  # rotation about the tool z, seen about base z
        buttons = list(state.buttons)
        close, open_ = _pressed(buttons, self.m.close_button), _pressed(buttons, self.m.open_button)
        grip = 1.0 if close and not open_ else -1.0 if open_ and not close else 0.0
        action = np.zeros(self.action_dim, np.float32)
        action[:3] = np.clip(translation, -1.0, 1.0)
        if self.action_dim == 5:
            action[3] = np.clip(yaw, -1.0, 1.0)
        action[-1] = grip
        if self.m.deadman_button >= 0:
            held = _pressed(buttons, self.m.deadman_button)
        else:
            mapped = picked[:3] if self.action_dim == 4 else picked
            held = bool(np.any(mapped != 0.0)) or close or open_
        if held:
            self._last_active = state.stamp
        active = held or (self.m.release_delay > 0
                          and state.stamp - self._last_active <= self.m.release_delay)
        return InterventionCommand(action, active, _pressed(buttons, self.m.confirm_button),
                                   _pressed(buttons, self.m.success_button), state.stamp,
                                   _pressed(buttons, self.m.failure_button))
