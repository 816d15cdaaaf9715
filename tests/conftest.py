"""Shared fixtures for the foundation tests (config, kinematics, controller, sim, env).

Building a SimWorld compiles the MJCF + URDF and loads pinocchio; worlds are therefore cached
per configuration for the whole session, and every test gets one freshly ``reset``.
"""
from __future__ import annotations

import json

import robot_rl  # noqa: F401  (sets MUJOCO_GL=egl before mujoco is imported)

import mujoco
import numpy as np
import pytest

from robot_rl.config import Config, load_config

# Where a cube is parked when a test needs the arm's workspace clear: on the floor, far away.
CUBE_PARKED = np.array([1.6, 1.6, -0.75 + 0.025])


def make_config(overrides: dict | None = None) -> Config:
    """Default config with dotted or nested overrides, through the real loader."""
    return load_config(None, overrides or {})


@pytest.fixture(scope="module")
def cfg():
    """The default configuration (a module may define its own ``cfg`` instead)."""
    return Config()


@pytest.fixture(scope="module")
def kin(cfg):
    """Real pinocchio kinematics of ``cfg``'s arm."""
    from robot_rl.robot.kinematics import ArmKinematics
    return ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)


@pytest.fixture(scope="session")
def world_factory():
    """``world_factory(overrides=None, seed=0)`` -> a reset SimWorld, cached per overrides."""
    from robot_rl.sim.world import SimWorld

    cache: dict[str, SimWorld] = {}

    def make(overrides: dict | None = None, seed: int = 0) -> SimWorld:
        key = json.dumps(overrides or {}, sort_keys=True)
        if key not in cache:
            cache[key] = SimWorld(make_config(overrides), seed=seed)
        world = cache[key]
        world.reset(seed=seed)
        return world

    yield make
    for world in cache.values():
        world.close()


@pytest.fixture
def world(world_factory):
    """The default SimWorld, reset with seed 0."""
    return world_factory()


def park_cube(world) -> None:
    """Move the cube out of the arm's reach so controller tests see no contact with it."""
    adr = world._cube_qpos
    world.data.qpos[adr:adr + 7] = [*CUBE_PARKED, 1, 0, 0, 0]
    world.data.qvel[world.model.jnt_dofadr[world.model.joint("cube_joint").id]:][:6] = 0
    mujoco.mj_forward(world.model, world.data)


@pytest.fixture(name="park_cube")
def park_cube_fixture():
    """The ``park_cube(world)`` helper, for tests that build or reset their own worlds."""
    return park_cube


@pytest.fixture
def clear_world(world):
    """Default world with the cube parked far away."""
    park_cube(world)
    return world


@pytest.fixture(scope="session")
def env_factory():
    """``env_factory(overrides=None)`` -> a PickCubeEnv, cached per overrides."""
    from robot_rl.envs.pick_cube import PickCubeEnv

    cache: dict[str, PickCubeEnv] = {}

    def make(overrides: dict | None = None) -> PickCubeEnv:
        key = json.dumps(overrides or {}, sort_keys=True)
        if key not in cache:
            cache[key] = PickCubeEnv(make_config(overrides))
        return cache[key]

    yield make
    for env in cache.values():
        env.close()

