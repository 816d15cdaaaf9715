"""The pick task over a batched simulator, as a Gymnasium ``VectorEnv``: the interface robot_rl's
vector trainer takes (dict observations of the task's spaces, ``terminations`` / ``truncations``
apart, ``SAME_STEP`` autoreset with ``infos["final_obs"]``).

A batched simulator is anything with the :class:`BatchedSim` methods: the Isaac Lab scene
(robot_rl/sim/isaac/lab_env.py: thousands of GPU environments) or :class:`MujocoBatchSim`
(N in-process MuJoCo worlds, the reference: with it this env reproduces N ``PickCubeEnv``s
step for step, which tests/test_isaac.py checks). The task logic is
:class:`~robot_rl.sim.isaac.task_mapping.BatchedPickTask`. No Isaac import.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space

from robot_rl.config import Config
from robot_rl.sim.isaac.task_mapping import BatchedPickTask


@dataclass
class BatchState:
    """The robot contract of every env at one instant (base frame, SI units)."""
    ee_pos: torch.Tensor          # (N, 3)
    ee_quat: torch.Tensor         # (N, 4) x, y, z, w
    ee_vel: torch.Tensor          # (N, 6) linear, angular
    gripper_width: torch.Tensor   # (N,)
    object_pos: torch.Tensor      # (N, 3)
    tactile: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N, rows, cols)


class BatchedSim(Protocol):
    num_envs: int
    home_quat_xyzw: np.ndarray    # the TCP orientation at the home posture

    def reset_envs(self, env_ids: np.ndarray, seeds: Sequence[int | None]) -> None:
        """Arm home, gripper open, object at a random pose, in ``env_ids``."""

    def advance(self, target_pos: torch.Tensor, target_quat: torch.Tensor,
                width: torch.Tensor) -> None:
        """Command every env's TCP target and gripper opening; run one control period."""

    def read(self) -> BatchState:
        """The state of every env."""


class PickVectorEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, cfg: Config, sim: BatchedSim, device: str = "cpu",
                 dtype: torch.dtype = torch.float64):
        self.cfg, self.sim, self.num_envs = cfg, sim, sim.num_envs
        self.task = BatchedPickTask(cfg, sim.home_quat_xyzw, sim.num_envs, device, dtype)
        self.single_observation_space = self.task.observation_space
        self.single_action_space = self.task.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._state: BatchState | None = None

    def _observe(self, state: BatchState) -> dict[str, np.ndarray]:
        obs = self.task.observe(state.ee_pos, state.ee_vel, state.gripper_width, state.tactile,
                                state.object_pos)
        return {k: v.detach().cpu().numpy() for k, v in obs.items()}

    def _reset_envs(self, env_ids: np.ndarray, seeds: Sequence[int | None]) -> BatchState:
        self.sim.reset_envs(env_ids, seeds)
        state = self.sim.read()
        ids = torch.as_tensor(env_ids)
        self.task.reset(ids, state.ee_pos[ids], state.ee_quat[ids])
        self._steps[env_ids] = 0
        return state

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"{len(seeds)} seeds for {self.num_envs} envs")
        self._state = self._reset_envs(np.arange(self.num_envs), seeds)
        return self._observe(self._state), {"success": np.zeros(self.num_envs, dtype=bool)}

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        state = self._state
        actions = torch.as_tensor(np.asarray(actions), dtype=state.ee_pos.dtype, device=state.ee_pos.device)
        if not torch.all(torch.isfinite(actions)):
            raise ValueError(f"actions are not finite: {actions}")
        self.sim.advance(*self.task.command(actions, state.ee_pos, state.ee_quat))
        state = self.sim.read()
        self._steps += 1
        success = self.task.success(state.ee_pos, state.object_pos)
        reward = self.task.reward(state.ee_pos, state.object_pos, state.gripper_width)
        terminated = success.cpu().numpy()
        truncated = ~terminated & (self._steps >= self.task.task.max_episode_steps)
        obs = self._observe(state)
        infos: dict = {"success": terminated.copy()}
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            for i in done:
                infos = self._add_info(infos, {"final_obs": {k: v[i].copy() for k, v in obs.items()},
                                               "final_info": {"success": bool(terminated[i])}}, i)
            state = self._reset_envs(done, [None] * len(done))
            fresh = self._observe(state)
            for k in obs:
                obs[k][done] = fresh[k][done]
        self._state = state
        return (obs, reward.cpu().numpy().astype(np.float64), terminated, truncated, infos)


class MujocoBatchSim:
    """N in-process MuJoCo worlds behind :class:`BatchedSim` (one after another on the CPU)."""

    def __init__(self, cfg: Config, num_envs: int):
        from robot_rl.sim.world import SimWorld
        self.cfg, self.num_envs = cfg, num_envs
        self.worlds = [SimWorld(cfg) for _ in range(num_envs)]
        self.home_quat_xyzw = self.worlds[0].ee_pose()[1]

    def reset_envs(self, env_ids, seeds) -> None:
        for i, seed in zip(env_ids, seeds):
            self.worlds[i].reset(seed=seed)

    def advance(self, target_pos, target_quat, width) -> None:
        for world, pos, quat, w in zip(self.worlds, target_pos.cpu().numpy(),
                                       target_quat.cpu().numpy(), width.cpu().numpy()):
            world.controller.set_cartesian_target(pos, quat)
            world.set_gripper(float(w))
            world.step_physics()

    def read(self) -> BatchState:
        poses = [w.ee_pose() for w in self.worlds]
        t = lambda rows: torch.as_tensor(np.array(rows), dtype=torch.float64)  # noqa: E731
        return BatchState(
            ee_pos=t([p for p, _ in poses]), ee_quat=t([q for _, q in poses]),
            ee_vel=t([w.ee_velocity() for w in self.worlds]),
            gripper_width=t([w.gripper_width() for w in self.worlds]),
            object_pos=t([w.object_pose()[0] for w in self.worlds]),
            tactile={s.name: t([w.tactile(s.name) for w in self.worlds])
                     for s in self.cfg.tactile})

    def close(self) -> None:
        for world in self.worlds:
            world.close()
