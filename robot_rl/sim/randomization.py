"""Per-episode domain randomisation of the MuJoCo stand-in, and its solver settings.

ROS-free. ``DomainRandomizer`` keeps copies of the compiled model's nominal arrays and, at every
episode, writes nominal * drawn scale back into the model (never scaling an already scaled
value, so nothing accumulates). The values of an episode are a plain dict (JSON-ready):
``draw`` makes one from the configured ranges, ``apply`` writes one into the model, so a logged
episode is replayed by applying its logged dict. What lives outside the model (latency, sensor
noise, tactile gain) is applied to the observations by ``ObservationChannel`` and to the
commands by ``CommandDelay``, both built from the same dict.
"""
from __future__ import annotations

import copy
import json
from collections import deque
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from robot_rl.sim.randomization_config import PhysicsConfig, RandomizationConfig

INTEGRATORS = {"Euler": mujoco.mjtIntegrator.mjINT_EULER, "RK4": mujoco.mjtIntegrator.mjINT_RK4,
               "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
               "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST}
CONES = {"pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL, "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC}

# Scalars drawn uniformly in their configured [low, high]; the key is the config field's name.
SCALE_KEYS = ("friction_scale", "object_mass_scale", "link_mass_scale", "joint_damping_scale",
              "gain_scale", "light_scale", "tactile_gain_scale", "tcp_noise", "gripper_noise",
              "object_noise", "tactile_noise")
LATENCY_KEYS = ("action_latency", "observation_latency")


def apply_physics(model: mujoco.MjModel, physics: PhysicsConfig) -> None:
    """Replace the scene's solver/contact settings by the configured ones (those not 'scene')."""
    opt = model.opt
    if physics.integrator != "scene":
        opt.integrator = INTEGRATORS[physics.integrator]
    if physics.cone != "scene":
        opt.cone = CONES[physics.cone]
    if physics.noslip_iterations >= 0:
        opt.noslip_iterations = physics.noslip_iterations
    if physics.impratio > 0:
        opt.impratio = physics.impratio
    if physics.solref:
        model.geom_solref[:] = physics.solref
    if physics.solimp:
        model.geom_solimp[:] = physics.solimp


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


class DomainRandomizer:
    """Draws and applies one episode's values to ``model`` (and the controller's gains).

    ``object_body``: the manipulated body (``object_mass_scale``); ``robot_bodies``: the links
    whose masses and inertias ``link_mass_scale`` scales; ``arm_dofs``: the dofs whose damping
    ``joint_damping_scale`` scales."""

    def __init__(self, model: mujoco.MjModel, cfg: RandomizationConfig, *, object_body: int,
                 robot_bodies: list[int], arm_dofs: np.ndarray, controller=None):
        self.model, self.cfg, self.controller = model, cfg, controller
        self.object_body, self.robot_bodies = object_body, list(robot_bodies)
        self.arm_dofs = np.asarray(arm_dofs)
        self.episode = 0
        m = model
        self.nominal = {name: getattr(m, name).copy() for name in (
            "geom_friction", "body_mass", "body_inertia", "dof_damping", "cam_pos", "cam_quat",
            "cam_fovy", "light_diffuse", "geom_rgba", "mat_rgba")}
        self.nominal_headlight = m.vis.headlight.diffuse.copy()
        self.nominal_gains = (None if controller is None else controller.cfg)
        self.camera_names = [m.camera(i).name for i in range(m.ncam)]

    # -- drawing ------------------------------------------------------------------------------
    def draw(self, seed: int | None = None) -> dict[str, Any]:
        """The next episode's values: from (cfg.seed, episode index), or from ``seed``."""
        key = [self.cfg.seed, self.episode] if seed is None else [self.cfg.seed, 1 << 20, seed]
        rng = np.random.default_rng(key)
        cfg = self.cfg
        values: dict[str, Any] = {"episode": self.episode}
        for name in SCALE_KEYS:
            values[name] = _uniform(rng, getattr(cfg, name))
        for name in LATENCY_KEYS:
            lo, hi = getattr(cfg, name)
            values[name] = int(rng.integers(lo, hi + 1))
        cameras = {}
        for cam in self.camera_names:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            cameras[cam] = {
                "pos_offset": (rng.uniform(-1, 1, 3) * cfg.camera_pos_jitter).tolist(),
                "rot_axis": axis.tolist(),
                "rot_angle": float(rng.uniform(-1, 1) * cfg.camera_rot_jitter),
                "fovy_offset": float(rng.uniform(-1, 1) * cfg.camera_fovy_jitter)}
        values["cameras"] = cameras
        values["color_jitter"] = float(cfg.color_jitter)  # in the values: a replay needs no config
        values["color_offset_seed"] = int(rng.integers(2**31))
        values["noise_seed"] = int(rng.integers(2**31))
        self.episode += 1
        return values

    # -- applying -----------------------------------------------------------------------------
    def apply(self, values: dict[str, Any]) -> None:
        """Nominal model, then this episode's values; ``mj_setConst`` refreshes what MuJoCo
        derives from masses (constraint scaling). Needs an ``mjData`` for the latter: the
        caller resets its data after this."""
        m, nom = self.model, self.nominal
        for name, array in nom.items():
            getattr(m, name)[:] = array
        m.vis.headlight.diffuse[:] = self.nominal_headlight

        m.geom_friction[:, 0] = nom["geom_friction"][:, 0] * values["friction_scale"]
        mass_scale = np.ones(m.nbody)
        mass_scale[self.robot_bodies] = values["link_mass_scale"]
        mass_scale[self.object_body] = values["object_mass_scale"]
        m.body_mass[:] = nom["body_mass"] * mass_scale
        m.body_inertia[:] = nom["body_inertia"] * mass_scale[:, None]
        m.dof_damping[self.arm_dofs] = nom["dof_damping"][self.arm_dofs] * values[
            "joint_damping_scale"]
        for cam, jitter in values["cameras"].items():
            i = m.camera(cam).id
            m.cam_pos[i] = nom["cam_pos"][i] + np.asarray(jitter["pos_offset"])
            turn = np.zeros(4)
            mujoco.mju_axisAngle2Quat(turn, np.asarray(jitter["rot_axis"], float),
                                      jitter["rot_angle"])
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, nom["cam_quat"][i], turn)
            m.cam_quat[i] = quat
            m.cam_fovy[i] = nom["cam_fovy"][i] + jitter["fovy_offset"]
        m.light_diffuse[:] = np.clip(nom["light_diffuse"] * values["light_scale"], 0, 1)
        m.vis.headlight.diffuse[:] = np.clip(self.nominal_headlight * values["light_scale"], 0, 1)
        if values["color_jitter"]:
            rng = np.random.default_rng(values["color_offset_seed"])
            for name in ("geom_rgba", "mat_rgba"):
                rgba = getattr(m, name)
                offset = rng.uniform(-1, 1, (len(rgba), 3)) * values["color_jitter"]
                rgba[:, :3] = np.clip(nom[name][:, :3] + offset, 0, 1)
        if self.controller is not None:
            base = self.nominal_gains
            self.controller.set_stiffness(base.stiffness_pos * values["gain_scale"],
                                          base.stiffness_rot * values["gain_scale"])
        scratch = mujoco.MjData(m)
        mujoco.mj_setConst(m, scratch)

    def restore(self) -> None:
        """Back to the nominal model (and gains)."""
        self.apply(nominal_values(self.camera_names))


def nominal_values(camera_names=()) -> dict[str, Any]:
    """The values that leave everything nominal (what a disabled randomisation means)."""
    values: dict[str, Any] = {"episode": -1}
    values.update({name: 1.0 for name in SCALE_KEYS})
    values.update({name: 0.0 for name in ("tcp_noise", "gripper_noise", "object_noise",
                                          "tactile_noise")})
    values.update({name: 0 for name in LATENCY_KEYS})
    values["cameras"] = {cam: {"pos_offset": [0.0, 0.0, 0.0], "rot_axis": [1.0, 0.0, 0.0],
                               "rot_angle": 0.0, "fovy_offset": 0.0} for cam in camera_names}
    values["color_jitter"] = 0.0
    values["color_offset_seed"] = values["noise_seed"] = 0
    return values


class ObservationChannel:
    """What the policy sees of the snapshots: ``observation_latency`` periods late, with the
    episode's sensor noise and tactile gain. Rewards and success keep the true snapshot."""

    def __init__(self, values: dict[str, Any]):
        self.values = values
        self.rng = np.random.default_rng(values["noise_seed"])
        self.history: deque = deque(maxlen=values["observation_latency"] + 1)

    def observe(self, snap):
        seen = self._perturb(snap)
        if not self.history:  # reset: the sensors have seen only the start state
            self.history.extend([seen] * self.history.maxlen)
        self.history.append(seen)
        return self.history[0]

    def _perturb(self, snap):
        v, rng = self.values, self.rng
        seen = copy.copy(snap)
        seen.ee_pos = snap.ee_pos + rng.normal(0.0, v["tcp_noise"], 3) if v["tcp_noise"] \
            else snap.ee_pos
        if v["gripper_noise"]:
            seen.gripper_width = float(snap.gripper_width + rng.normal(0.0, v["gripper_noise"]))
        if v["object_noise"] and snap.object_pos is not None:
            seen.object_pos = snap.object_pos + rng.normal(0.0, v["object_noise"], 3)
        if v["tactile_gain_scale"] != 1.0 or v["tactile_noise"]:
            # A touch sensor reads no negative force: the noise floor clips at zero.
            seen.tactile = {name: np.maximum(reading * v["tactile_gain_scale"] + rng.normal(
                0.0, v["tactile_noise"], reading.shape), 0.0).astype(np.float32)
                for name, reading in snap.tactile.items()}
        return seen


class CommandDelay:
    """Commands take effect ``action_latency`` control periods after they are sent; until the
    first one arrives the controller holds (``None``)."""

    def __init__(self, values: dict[str, Any]):
        self.queue: deque = deque([None] * values["action_latency"])

    def push(self, command):
        self.queue.append(command)
        return self.queue.popleft()


def append_log(path: str | Path, record: dict[str, Any]) -> None:
    """One JSON line per episode; a crash loses at most the line being written."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

