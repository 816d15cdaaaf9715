"""The pick task over batches of environments, in torch: what the Isaac Lab environment observes,
how its actions move the TCP target, and its reward, term for term the same as
:class:`robot_rl.envs.task.PickCubeTask` (tests/test_isaac.py compares them env by env).

Isaac Lab keeps every environment's state in (num_envs, ...) tensors on the GPU; the robot_rl
task works on one :class:`~robot_rl.envs.task.Snapshot`. This module is the batched twin of the
parts a policy depends on (observation layout and units, action scaling and frame, the gripper
latch, success and reward), so a policy trained in Isaac Lab reads and acts exactly as the
deployed controller expects. No Isaac import: it runs (and is tested) on the CPU.
"""
from __future__ import annotations

import numpy as np
import torch

from robot_rl.config import Config
from robot_rl.envs.task import CUBE_HALF, GRIPPER_CLOSE, GRIPPER_OPEN, reward_range


def quat_xyzw_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) x, y, z, w -> (N, 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True)
    x, y, z, w = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)


def matrix_to_quat_xyzw(m: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) -> (N, 4) x, y, z, w, each row from the branch of its largest component
    (stable at every angle, 180 degrees included), with w >= 0."""
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    d21, d02, d10 = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    s01, s02, s12 = m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1]
    traces = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                          1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    r = 2 * torch.sqrt(torch.clamp(traces, min=1e-12))  # 4 * the branch's component
    candidates = torch.stack([
        torch.stack([d21, d02, d10, r[:, 0] ** 2 / 4], -1) / r[:, :1],
        torch.stack([r[:, 1] ** 2 / 4, s01, s02, d21], -1) / r[:, 1:2],
        torch.stack([s01, r[:, 2] ** 2 / 4, s12, d02], -1) / r[:, 2:3],
        torch.stack([s02, s12, r[:, 3] ** 2 / 4, d10], -1) / r[:, 3:4]], 1)
    q = candidates[torch.arange(m.shape[0]), traces.argmax(-1)]
    return torch.where(q[:, 3:] < 0, -q, q)


class BatchedPickTask:
    """``num_envs`` copies of the configured pick task's per-episode state (gripper latch,
    relative-frame start pose), stepped together."""

    def __init__(self, cfg: Config, home_quat_xyzw, num_envs: int, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64):
        from robot_rl.envs.task import make_task
        if cfg.task.name != "pick_cube":
            raise ValueError(f"the Isaac Lab environment implements task 'pick_cube' (batched); "
                             f"task.name is {cfg.task.name!r}")
        self.task = make_task(cfg, np.asarray(home_quat_xyzw, dtype=np.float64), check_graph=False)
        self.cfg, self.num_envs, self.device = cfg, num_envs, torch.device(device)
        if "images" in cfg.task.observations:
            raise ValueError("the Isaac Lab environment has no 'images' observation (camera "
                             "rendering per environment is left to tiled cameras); remove "
                             "'images' from task.observations")
        self.observation_space = self.task.observation_space
        self.action_space = self.task.action_space
        self.action_names = list(self.task.action_names)
        self.use_yaw = self.task.use_yaw
        self.relative = self.task.relative_frame
        # float64 reproduces the per-env task bit for bit; Isaac Lab may pass float32.
        self.home_rot = torch.as_tensor(self.task.home_rot, dtype=dtype, device=self.device)
        self.gripper_closed = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self.start_pos = torch.zeros(num_envs, 3, dtype=dtype, device=self.device)
        self.start_rot = torch.eye(3, dtype=dtype, device=self.device).repeat(num_envs, 1, 1)
        self.reward_range = reward_range(cfg.task)

    # -- layout --------------------------------------------------------------------------------
    def observation_layout(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of each term, in the order the flat observation concatenates them."""
        return [(k, tuple(s.shape)) for k, s in self.observation_space.spaces.items()]

    def flat_dim(self) -> int:
        return int(sum(np.prod(shape) for _, shape in self.observation_layout()))

    def flatten(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([obs[k].reshape(obs[k].shape[0], -1) for k, _ in self.observation_layout()], -1)

    # -- episode -------------------------------------------------------------------------------
    def reset(self, env_ids: torch.Tensor, ee_pos: torch.Tensor, ee_quat: torch.Tensor) -> None:
        """New episodes in ``env_ids``, starting at the given TCP poses (rows of env_ids)."""
        self.gripper_closed[env_ids] = False
        self.start_pos[env_ids] = ee_pos.to(self.start_pos)
        self.start_rot[env_ids] = quat_xyzw_to_matrix(ee_quat.to(self.start_pos))

    def _to_task(self, v: torch.Tensor, point: bool) -> torch.Tensor:
        if not self.relative:
            return v
        if point:
            v = v - self.start_pos
        return torch.einsum("nji,nj->ni", self.start_rot, v)

    def observe(self, ee_pos, ee_vel, gripper_width, tactile: dict[str, torch.Tensor],
                object_pos=None) -> dict[str, torch.Tensor]:
        """Every term of the task's observation space for all envs (base frame inputs, SI)."""
        keys = self.observation_space.spaces
        obs: dict[str, torch.Tensor] = {}
        if "state" in keys:
            obs["state"] = torch.cat([self._to_task(ee_pos, True), self._to_task(ee_vel[:, :3], False),
                                      gripper_width.reshape(-1, 1).to(ee_pos),
                                      self.gripper_closed.to(ee_pos).reshape(-1, 1)], -1).float()
        if "object" in keys:
            if object_pos is None:
                raise ValueError("the 'object' observation needs the object's position")
            obs["object"] = torch.cat([self._to_task(object_pos, True),
                                       self._to_task(object_pos - ee_pos, False)], -1).float()
        for t in self.cfg.tactile:
            key = f"tactile_{t.name}"
            if key in keys:
                obs[key] = tactile[t.name].float()
        return {k: obs[k] for k in keys}  # the space's order: the flat observation's layout

    # -- acting --------------------------------------------------------------------------------
    def command(self, actions: torch.Tensor, ee_pos: torch.Tensor, ee_quat: torch.Tensor):
        """Actions in [-1, 1] (N, A) -> TCP target position (N, 3), orientation (N, 4 x,y,z,w)
        and gripper opening (N,), latching the gripper as the task does."""
        if actions.shape != (self.num_envs, len(self.action_names)):
            raise ValueError(f"actions have shape {tuple(actions.shape)}, expected "
                             f"({self.num_envs}, {len(self.action_names)}) ({self.action_names})")
        a = torch.clamp(actions.to(self.start_pos), -1.0, 1.0)
        step = a[:, :3] * self.cfg.task.max_step_pos
        if self.relative:
            step = torch.einsum("nij,nj->ni", self.start_rot, step)
        target = ee_pos + step
        rot = self.home_rot.expand(self.num_envs, 3, 3)
        if self.use_yaw:
            relative = quat_xyzw_to_matrix(ee_quat.to(self.start_pos)) @ self.home_rot.T
            yaw = torch.atan2(relative[:, 1, 0], relative[:, 0, 0]) + a[:, 3] * self.cfg.task.max_step_yaw
            c, s = torch.cos(yaw), torch.sin(yaw)
            zeros, ones = torch.zeros_like(c), torch.ones_like(c)
            rz = torch.stack([c, -s, zeros, s, c, zeros, zeros, zeros, ones], -1).reshape(-1, 3, 3)
            rot = rz @ self.home_rot
        grip = a[:, -1]
        self.gripper_closed = (grip >= GRIPPER_CLOSE) | ((grip > GRIPPER_OPEN) & self.gripper_closed)
        width = (~self.gripper_closed).to(a) * self.cfg.robot.gripper_max_width
        return target, matrix_to_quat_xyzw(rot), width

    # -- success and reward --------------------------------------------------------------------
    def success(self, ee_pos, object_pos) -> torch.Tensor:
        lifted = object_pos[:, 2] - CUBE_HALF >= self.cfg.task.lift_height
        return lifted & ((object_pos - ee_pos).norm(dim=-1) < 0.04)

    def reward(self, ee_pos, object_pos, gripper_width) -> torch.Tensor:
        success = self.success(ee_pos, object_pos)
        if self.cfg.task.reward == "sparse":
            return success.to(object_pos.dtype)
        distance = (object_pos - ee_pos).norm(dim=-1)
        reach = 1.0 - torch.tanh(10.0 * distance)
        closed_on = ((distance < 0.03) & self.gripper_closed
                     & (gripper_width > 0.5 * 2 * CUBE_HALF)).to(distance)
        lift = torch.clamp((object_pos[:, 2] - CUBE_HALF) / self.cfg.task.lift_height, 0.0, 1.0)
        progress = 0.3 * reach + 0.2 * closed_on + 0.5 * lift * closed_on
        return torch.where(success, torch.zeros_like(progress), -1.0 + 0.9 * progress)
