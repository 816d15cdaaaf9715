"""Success rate of an exported policy through the deployed controller's tick, in-process.

No ROS: :class:`~robot_rl.deploy.controller_core.ControllerCore` (the node's observation,
policy, command mapping and safety layer) drives ``SimTaskEnv``'s MuJoCo world (the configured
task) through its public :meth:`~robot_rl.envs.pick_cube.SimTaskEnv.advance`; success is the
task's own simulator-state test (ground truth, used only to score). The same evaluation over DDS, with
the sim graph as processes, is ``robot_rl.ros.controller_eval.evaluate_deployed_ros``.
"""
from __future__ import annotations

from typing import Callable

from robot_rl.config import Config
from robot_rl.deploy.controller_core import ControllerCore, reset_to_idle

__all__ = ["evaluate_deployed"]


def evaluate_deployed(cfg: Config, model_path, episodes: int, seed: int = 0, providers: str = "cpu",
                      policy: Callable | None = None, trace: list | None = None) -> float:
    """Success rate of the exported model over ``episodes`` in-process MuJoCo episodes.

    Runs the controller's tick against ``SimTaskEnv``'s world at ``cfg.control_rate_hz``;
    episode ``i`` uses seed ``seed + i`` as ``SimTaskEnv.reset``. ``trace`` (a list) receives
    ``(episode, observation, StepResult)`` for every tick.
    """
    from robot_rl.deploy.agent_export import robot_spec
    from robot_rl.deploy.onnx_policy import OnnxPolicy
    from robot_rl.envs.pick_cube import SimTaskEnv

    if policy is None:
        policy = OnnxPolicy(model_path, providers=providers, intra_op_threads=cfg.deploy.intra_op_threads)
        policy.check_against(robot_spec(cfg, cfg.control_rate_hz))
    env = SimTaskEnv(cfg)
    try:
        core = ControllerCore(cfg, policy, rate_hz=cfg.control_rate_hz, quat_home=env.world.ee_pose()[1])
        successes = 0
        for ep in range(episodes):
            env.reset(seed=seed + ep)
            snap = env.snapshot
            reset_to_idle(core)
            stamps = {s: snap.stamp for s in core.sensors}
            core.step(snap, snap.stamp, stamps)  # IDLE tick: evaluates faults before engaging
            core.engage()
            for _ in range(cfg.task.max_episode_steps):
                stamps = {s: snap.stamp for s in core.sensors}
                obs = core.task.observe(snap) if trace is not None else None
                res = core.step(snap, snap.stamp, stamps)
                if trace is not None:
                    trace.append((ep, obs, res))
                snap = env.advance(res.target, res.quat, res.width)
                if core.task.success(snap):
                    successes += 1
                    break
        return successes / max(episodes, 1)
    finally:
        env.close()
