"""A stock manipulation task from a maintained package, trained through ``train_gym.train``.

Gymnasium-Robotics' ``FetchPickAndPlace-v4`` (and the other Fetch tasks) are goal-conditioned:
``Dict`` observations (``observation``, ``achieved_goal``, ``desired_goal``), a -1/0 reward and
episodes that never terminate. ``SuccessTask`` turns one into the kind of task robot_rl's recipe
is made for, as a user with their own env would: a flat ``Box`` observation (``observation`` then
``desired_goal``), a sparse 0/1 success reward from ``info["is_success"]`` and termination on
success, so "steps to success" means the same as on the pick task. ``FetchPickPlaceExpert``
writes scripted demonstrations from that observation alone (no simulator state).

gymnasium-robotics comes with the ``test`` extra (bench and tests only); ``make_fetch_env`` imports it.
Its 1.4.2 release compares MuJoCo joint-type enums with ``==`` / ``in`` against the numpy
integers of ``model.jnt_type``, which MuJoCo 4's enums no longer equal, so every Fetch env fails
at construction; ``_joint_type_compat`` swaps in joint accessors that compare integers.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import gymnasium as gym
import numpy as np

# Layout of Fetch's ``observation`` vector (gymnasium_robotics.envs.fetch.fetch_env._get_obs):
# grip_pos 0:3, object_pos 3:6, object_rel_pos 6:9, gripper_state 9:11, object_rot 11:14,
# object_velp 14:17, object_velr 17:20, grip_velp 20:23, gripper_vel 23:25.
GRIP_POS, OBJECT_POS, FINGERS = slice(0, 3), slice(3, 6), slice(9, 11)
FETCH_OBS_DIM = 25
FETCH_POS_STEP = 0.05  # m of mocap target motion per unit action (fetch_env: pos_ctrl *= 0.05)


class SuccessTask(gym.Wrapper):
    """Goal-conditioned Dict env -> flat Box observation, 0/1 success reward, ends on success."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or not {"observation", "desired_goal"} <= set(space.spaces):
            raise ValueError(f"SuccessTask needs a goal-conditioned Dict observation space with "
                             f"'observation' and 'desired_goal', got {space}")
        size = space["observation"].shape[0] + space["desired_goal"].shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    @staticmethod
    def flatten(obs: Dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([obs["observation"], obs["desired_goal"]]).astype(np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self.flatten(obs), info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        if "is_success" not in info:
            raise KeyError(f"SuccessTask: the env's info has no 'is_success' (keys: {sorted(info)})")
        success = bool(info["is_success"])
        return self.flatten(obs), float(success), bool(terminated or success), bool(truncated and not success), info


class FetchPickPlaceExpert:
    """Scripted pick-and-place from the flat observation: over the block, down, close, carry to
    the goal. ``noise`` (Gaussian, on the arm actions) makes the demonstrations diverse."""

    def __init__(self, noise: float = 0.0, rng: Optional[np.random.Generator] = None, gain: float = 10.0):
        self.noise, self.gain = noise, gain
        self.rng = rng or np.random.default_rng()
        self.reset()

    def reset(self) -> None:
        self.phase, self.closing = "over", 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        grip, block, goal = obs[GRIP_POS], obs[OBJECT_POS], obs[FETCH_OBS_DIM:FETCH_OBS_DIM + 3]
        fingers_open = 1.0
        if self.phase == "over":
            target = block + np.array([0.0, 0.0, 0.06])
            if np.linalg.norm((block - grip)[:2]) < 0.01:
                self.phase = "down"
        if self.phase == "down":
            target = block.copy()
            if abs(grip[2] - block[2]) < 0.01:
                self.phase = "close"
        if self.phase == "close":
            target, fingers_open = block.copy(), -1.0
            self.closing += 1
            if self.closing >= 3:
                self.phase = "carry"
        if self.phase == "carry":
            target, fingers_open = goal, -1.0
        move = np.clip((target - grip) * self.gain, -1.0, 1.0)
        if self.noise:
            move = np.clip(move + self.rng.normal(0.0, self.noise, 3), -1.0, 1.0)
        return np.concatenate([move, [fingers_open]]).astype(np.float32)


def _joint_width(model, joint_id: int, velocity: bool) -> int:
    import mujoco

    kind = int(model.jnt_type[joint_id])
    if kind == int(mujoco.mjtJoint.mjJNT_FREE):
        return 6 if velocity else 7
    if kind == int(mujoco.mjtJoint.mjJNT_BALL):
        return 3 if velocity else 4
    return 1


def _joint_slice(model, name: str, velocity: bool) -> slice:
    import mujoco

    joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if joint_id == -1:
        raise KeyError(f"joint {name!r} is not part of the model")
    start = int((model.jnt_dofadr if velocity else model.jnt_qposadr)[joint_id])
    return slice(start, start + _joint_width(model, joint_id, velocity))


def _joint_type_compat() -> None:
    """Joint qpos/qvel accessors for gymnasium-robotics that work with MuJoCo 4's enums (left
    alone where MuJoCo's enums still equal numpy integers)."""
    import mujoco
    from gymnasium_robotics.utils import mujoco_utils

    if mujoco.mjtJoint.mjJNT_FREE == np.int32(int(mujoco.mjtJoint.mjJNT_FREE)):
        return

    def set_joint_qpos(model, data, name, value):
        data.qpos[_joint_slice(model, name, False)] = np.asarray(value)

    def set_joint_qvel(model, data, name, value):
        data.qvel[_joint_slice(model, name, True)] = np.asarray(value)

    def get_joint_qpos(model, data, name):
        return data.qpos[_joint_slice(model, name, False)].copy()

    def get_joint_qvel(model, data, name):
        return data.qvel[_joint_slice(model, name, True)].copy()

    for fn in (set_joint_qpos, set_joint_qvel, get_joint_qpos, get_joint_qvel):
        setattr(mujoco_utils, fn.__name__, fn)


def make_fetch_env(env_id: str = "FetchPickAndPlace-v4", **kwargs: Any) -> SuccessTask:
    """A Gymnasium-Robotics Fetch env as a robot_rl task (``SuccessTask``)."""
    try:
        import gymnasium_robotics
    except ImportError as exc:
        raise ImportError("the Fetch tasks need gymnasium-robotics: pip install -e '.[test]' "
                          "(or pip install gymnasium-robotics==1.4.2)") from exc
    _joint_type_compat()
    gym.register_envs(gymnasium_robotics)
    return SuccessTask(gym.make(env_id, **kwargs))
