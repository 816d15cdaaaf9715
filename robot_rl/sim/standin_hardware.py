"""A torque-controlled arm behind ros2_control, played by MuJoCo (ROS-free core).

The joint driver's ``ros2_control`` adapter talks to three topics on a real arm: the
``joint_state_broadcaster`` output, an effort ``forward_command_controller`` (one torque per arm
joint, in ``robot.arm_joints`` order) and a forward position controller for the fingers. This
class is the hardware behind those topics: it integrates the same MuJoCo model the stand-in uses
(the project's URDF in the pick-cube scene) in wall-clock time, one ``sim.physics_dt`` step per
tick, with the latest torques applied.

What it reproduces of a Franka under ros2_control, so the driver meets the same behaviour:
- the arm is braked until the first torque command, and again when commands stop for
  ``command_timeout`` s (default 20 ms: a Franka stops on a few missed 1 kHz packets; here the
  joints are held where they are). Holding a stale torque longer is what a lenient watchdog
  would do: at 100 ms, under a load average of 25, the Python driver's stalls let the stale
  torques carry the TCP 154 mm out of the workspace box in one check-backend run;
- ``hardware_compensates_gravity``: the Franka's torque interface adds g(q) itself, so a driver
  that also sends g(q) pushes the arm upward; with it off (the plain MuJoCo convention) the
  commanded torque must carry gravity;
- commands of the wrong length or with NaN/Inf are refused (as forward_command_controller
  ignores a wrongly sized command), torques are saturated at the URDF effort limits, and the
  torque rate between commands is measured against ``torque_rate_limit`` (Franka rejects jumps
  above 1000 Nm/s): violations are counted, not silently smoothed.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robot_rl.config import Config
from robot_rl.robot.adapter import JointReading
from robot_rl.sim.scene import build_model

FRANKA_TORQUE_RATE_LIMIT = 1000.0  # Nm/s, libfranka's limit on the commanded torque derivative


@dataclass
class HardwareCounters:
    ticks: int = 0
    commands: int = 0
    refused: int = 0
    gripper_commands: int = 0
    braked_ticks: int = 0
    torque_rate_violations: int = 0
    max_torque_rate: float = 0.0   # Nm/s over accepted commands, worst joint

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(self).items()}


class StandinArmHardware:
    def __init__(self, cfg: Config, compensates_gravity: bool | None = None,
                 command_timeout: float = 0.02,
                 torque_rate_limit: float = FRANKA_TORQUE_RATE_LIMIT):
        if compensates_gravity is None:
            compensates_gravity = bool(getattr(cfg.robot, "hardware_compensates_gravity", False))
        self.cfg = cfg
        self.compensates_gravity = compensates_gravity
        self.command_timeout = command_timeout
        self.torque_rate_limit = torque_rate_limit
        self.model = build_model(cfg)
        self.data = mujoco.MjData(self.model)
        model = self.model
        arm, fingers = cfg.robot.arm_joints, cfg.robot.gripper_joints
        self.names = list(arm) + list(fingers)
        self._arm_qpos = np.array([model.jnt_qposadr[model.joint(j).id] for j in arm])
        self._arm_dof = np.array([model.jnt_dofadr[model.joint(j).id] for j in arm])
        self._arm_act = np.array([model.actuator(f"{j}_torque").id for j in arm])
        self._grip_qpos = np.array([model.jnt_qposadr[model.joint(j).id] for j in fingers])
        self._grip_dof = np.array([model.jnt_dofadr[model.joint(j).id] for j in fingers])
        self._grip_act = model.actuator("gripper").id
        self.effort_limit = model.actuator_ctrlrange[self._arm_act, 1].copy()
        # The robot's subtree (from its base) carries all of its links' weight; its centre of
        # mass Jacobian gives the generalised gravity torque the firmware would add.
        self._robot_root = model.body(cfg.robot.base_frame).id
        self._robot_mass = float(model.body_subtreemass[self._robot_root])
        self._com_jac = np.zeros((3, model.nv))
        self.dt = float(model.opt.timestep)
        self.counters = HardwareCounters()
        self._tau = np.zeros(len(arm))
        self._tau_time: float | None = None   # hardware time of the last accepted command
        self._brake_q: np.ndarray | None = None
        self.reset()

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self) -> None:
        """Arm at ``robot.home``, fingers open, braked until torques arrive."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._arm_qpos] = self.cfg.robot.home
        self.data.qpos[self._grip_qpos] = self.cfg.robot.gripper_max_width / len(self._grip_qpos)
        self.data.ctrl[self._grip_act] = self.cfg.robot.gripper_max_width / len(self._grip_qpos)
        mujoco.mj_forward(self.model, self.data)
        self._tau[:] = 0.0
        self._tau_time = None

    # -- commands (the controllers' side) ------------------------------------------------------
    def command_efforts(self, values, now: float) -> str | None:
        """Torques for the arm joints in ``robot.arm_joints`` order. Returns why a command was
        refused (None when accepted); a refused command leaves the previous torques in force."""
        tau = np.asarray(values, dtype=float)
        if tau.shape != self._tau.shape:
            self.counters.refused += 1
            return (f"effort command has {tau.size} values, expected {self._tau.size} "
                    f"({', '.join(self.cfg.robot.arm_joints)})")
        if not np.all(np.isfinite(tau)):
            self.counters.refused += 1
            return f"effort command holds NaN/Inf: {tau.tolist()}"
        tau = np.clip(tau, -self.effort_limit, self.effort_limit)
        if self._tau_time is not None:
            elapsed = max(now - self._tau_time, self.dt)  # at most one change per hardware tick
            rate = float(np.max(np.abs(tau - self._tau))) / elapsed
            self.counters.max_torque_rate = max(self.counters.max_torque_rate, rate)
            if rate > self.torque_rate_limit:
                self.counters.torque_rate_violations += 1
        self._tau, self._tau_time = tau, now
        self.counters.commands += 1
        return None

    def command_gripper(self, finger_positions) -> str | None:
        """One position per finger joint (each finger's travel, m), as the forward position
        controller receives it."""
        values = np.asarray(finger_positions, dtype=float)
        if values.shape != self._grip_qpos.shape or not np.all(np.isfinite(values)):
            self.counters.refused += 1
            return (f"gripper command {values.tolist()}: expected {len(self._grip_qpos)} finite "
                    f"finger positions ({', '.join(self.cfg.robot.gripper_joints)})")
        per_finger = self.cfg.robot.gripper_max_width / len(self._grip_qpos)
        self.data.ctrl[self._grip_act] = float(np.clip(values.mean(), 0.0, per_finger))
        self.counters.gripper_commands += 1
        return None

    # -- the hardware tick ---------------------------------------------------------------------
    def braked(self, now: float) -> bool:
        return self._tau_time is None or now - self._tau_time > self.command_timeout

    def step(self, now: float) -> None:
        """One physics step at hardware time ``now`` (s, the clock command times use)."""
        data = self.data
        braked = self.braked(now)
        if braked:
            if self._brake_q is None:
                self._brake_q = data.qpos[self._arm_qpos].copy()
            data.ctrl[self._arm_act] = 0.0
        else:
            self._brake_q = None
            data.ctrl[self._arm_act] = self._tau
        mujoco.mj_step1(self.model, data)
        if self.compensates_gravity:
            data.qfrc_applied[self._arm_dof] = self.gravity_torque()
        mujoco.mj_step2(self.model, data)
        if braked:
            # Brakes engaged: the arm stays where it stopped; the fingers still move.
            data.qpos[self._arm_qpos] = self._brake_q
            data.qvel[self._arm_dof] = 0.0
            mujoco.mj_forward(self.model, data)
            self.counters.braked_ticks += 1
        self.counters.ticks += 1

    def gravity_torque(self) -> np.ndarray:
        """g(q) of the arm joints at the current positions (needs mj_step1/mj_forward first)."""
        mujoco.mj_jacSubtreeCom(self.model, self.data, self._com_jac, self._robot_root)
        weight = self._robot_mass * self.model.opt.gravity
        return -(self._com_jac[:, self._arm_dof].T @ weight)

    def reading(self) -> JointReading:
        """What joint_state_broadcaster publishes: position, velocity and the measured effort
        (the torque acting on each joint: the command, plus g(q) where the hardware adds it)."""
        d = self.data
        q = np.concatenate([d.qpos[self._arm_qpos], d.qpos[self._grip_qpos]])
        dq = np.concatenate([d.qvel[self._arm_dof], d.qvel[self._grip_dof]])
        arm_effort = d.qfrc_actuator[self._arm_dof] + d.qfrc_applied[self._arm_dof]
        effort = np.concatenate([arm_effort, d.qfrc_actuator[self._grip_dof]])
        return JointReading(self.names, q, dq, effort)

    def arm_q(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def gripper_width(self) -> float:
        return float(np.sum(self.data.qpos[self._grip_qpos]))


__all__ = ["StandinArmHardware", "HardwareCounters", "FRANKA_TORQUE_RATE_LIMIT"]
