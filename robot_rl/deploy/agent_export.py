"""Export a trained RLPD agent for the robot: metadata from the robot ``Config``, one ONNX.

The metadata is derived from the same objects the robot side uses, so a model and the
controller node can only agree if they were built from compatible configurations:

* task: ``task.name`` and ``task.relative_frame`` (the controller refuses a model trained on
  another task, or in another frame);
* observations: the configured task's ``observation_space`` (``make_task(cfg)``: names,
  shapes, dtypes, in the agent's key order), raw units (scale 1: the task builds them from SI
  sensor values);
* action: the task's ``action_names`` with the affine map of the agent's action Box
  (``action = offset + scale * a_norm``; [-1, 1] -> scale 1, offset 0);
* ``control_rate_hz``: ``cfg.control_rate_hz`` (the rate the agent was trained at: one
  action moves the target by ``task.max_step_pos``, so the rate is part of the policy);
* robot: ``cfg.robot.urdf`` as the description id, and arm + gripper joint names (the
  joints whose readings feed the observation);
* training: ``run_id`` and ``version``.

:func:`robot_spec` gives the robot side of the same contract for ``check_against``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from robot_rl.config import Config
from robot_rl.deploy.metadata import ActionSpec, ObservationTerm, PolicyMetadata, RobotSpec

__all__ = [
    "DEFAULT_VERSION",
    "robot_joint_names",
    "task_spaces",
    "robot_spec",
    "build_metadata",
    "export_agent",
    "load_agent_checkpoint",
    "make_agent",
    "constant_action_agent",
    "export_main",
]

DEFAULT_VERSION = "1.0.0"
_IDENTITY_QUAT = np.array([0.0, 0.0, 0.0, 1.0])


def robot_joint_names(cfg: Config) -> list[str]:
    """Joints the observation depends on, in order: arm joints, then gripper joints."""
    return [*cfg.robot.arm_joints, *cfg.robot.gripper_joints]


def task_spaces(cfg: Config):
    """``(observation_space, action_space, action_names)`` of the task for ``cfg``.

    The shapes do not depend on the home orientation, so no robot model is loaded.
    """
    from robot_rl.envs.task import make_task

    task = make_task(cfg, _IDENTITY_QUAT, check_graph=False)
    return task.observation_space, task.action_space, list(task.action_names)


def _dtype_name(space) -> str:
    return "uint8" if np.dtype(space.dtype) == np.uint8 else "float32"


def robot_spec(cfg: Config, rate_hz: float | None = None) -> RobotSpec:
    """What the robot configured by ``cfg`` provides, for ``PolicyMetadata.check_against``.

    ``rate_hz`` is the rate the controller will run at (default ``cfg.control_rate_hz``).
    """
    obs_space, _, _ = task_spaces(cfg)
    return RobotSpec(
        joint_names=robot_joint_names(cfg),
        observation_shapes={k: tuple(s.shape) for k, s in obs_space.spaces.items()},
        control_rate_hz=float(cfg.control_rate_hz if rate_hz is None else rate_hz),
        robot_description_id=cfg.robot.urdf,
        observation_dtypes={k: _dtype_name(s) for k, s in obs_space.spaces.items()},
        task_name=cfg.task.name,
        task_relative_frame=cfg.task.relative_frame,
    )


def build_metadata(cfg: Config, run_id: str, version: str = DEFAULT_VERSION,
                   observation_order: Sequence[str] | None = None,
                   action_low: Sequence[float] | None = None,
                   action_high: Sequence[float] | None = None) -> PolicyMetadata:
    """Metadata template (no ``export`` section) for a policy trained on ``cfg``."""
    obs_space, act_space, names = task_spaces(cfg)
    order = list(observation_order) if observation_order is not None else list(obs_space.spaces)
    if sorted(order) != sorted(obs_space.spaces):
        raise ValueError(f"agent observations {sorted(order)} do not match the task's "
                         f"{sorted(obs_space.spaces)} for this configuration (task.observations="
                         f"{cfg.task.observations})")
    low = np.asarray(act_space.low if action_low is None else action_low, dtype=np.float64)
    high = np.asarray(act_space.high if action_high is None else action_high, dtype=np.float64)
    if low.shape != (len(names),) or high.shape != (len(names),):
        raise ValueError(f"agent action dim {low.shape[0] if low.ndim else 0} != task action dim "
                         f"{len(names)} ({names})")
    terms = tuple(
        ObservationTerm(name=k, shape=tuple(int(d) for d in obs_space.spaces[k].shape),
                        dtype=_dtype_name(obs_space.spaces[k]), scale=1.0)
        for k in order)
    return PolicyMetadata(
        observations=terms,
        action=ActionSpec(names=tuple(names), scale=tuple(((high - low) / 2).tolist()),
                          offset=tuple(((high + low) / 2).tolist())),
        control_rate_hz=float(cfg.control_rate_hz),
        robot_description_id=cfg.robot.urdf,
        joint_names=tuple(robot_joint_names(cfg)),
        training_run_id=str(run_id),
        policy_version=str(version),
        task_name=cfg.task.name,
        task_relative_frame=cfg.task.relative_frame,
    )


def make_agent(cfg: Config):
    """A fresh ``RLPDAgent`` for the task configured by ``cfg`` (hyperparameters ``cfg.agent``)."""
    from robot_rl.learning.rlpd import RLPDAgent

    obs_space, act_space, _ = task_spaces(cfg)
    return RLPDAgent(obs_space, act_space, cfg.agent_settings())


def constant_action_agent(cfg: Config, action: Sequence[float]):
    """An ``RLPDAgent`` whose deterministic policy outputs ``action`` for every observation.

    For tests and benchmarks of the deployment path: the actor head's weights are zeroed and
    its bias set to ``atanh(action)``, so the exported graph still reads every observation
    (NaN inputs still propagate) but the command is known in advance. ``action`` is in the
    task's [-1, 1] units; +-1 is represented as +-(1 - 1e-6).
    """
    import torch

    agent = make_agent(cfg)
    a = np.clip(np.asarray(action, dtype=np.float64), -1 + 1e-6, 1 - 1e-6)
    n = agent.actor.action_dim
    if a.shape != (n,):
        raise ValueError(f"action needs {n} values, got {a.shape}")
    with torch.no_grad():
        agent.actor.head.weight.zero_()
        agent.actor.head.bias.zero_()
        agent.actor.head.bias[:n] = torch.as_tensor(np.arctanh(a), dtype=torch.float32)
    return agent


def export_agent(agent: Any, cfg: Config, path: str | os.PathLike, run_id: str,
                 version: str = DEFAULT_VERSION, *, parity_samples: int = 64, atol: float = 1e-5,
                 exporter: str = "auto", opset: int | None = None, seed: int = 0):
    """Export ``agent.export_module()`` to ``path`` (+ metadata JSON beside it).

    Runs the torch/onnxruntime parity check (max abs diff <= ``atol``, default 1e-5);
    raises ``ExportParityError`` and publishes nothing if it fails.  Returns the
    ``ExportResult`` of :func:`robot_rl.deploy.onnx_export.export_onnx`.
    """
    from robot_rl.deploy.onnx_export import export_onnx, random_observations

    space = getattr(agent, "observation_space", None)
    order = list(space.spaces) if space is not None and hasattr(space, "spaces") else None
    act = getattr(agent, "action_space", None)
    meta = build_metadata(cfg, run_id, version, order,
                          None if act is None else act.low, None if act is None else act.high)
    module = agent.export_module()
    example = random_observations(meta, 2, np.random.default_rng(seed))
    return export_onnx(module, example, meta, path, parity_samples=parity_samples, atol=atol,
                       exporter=exporter, opset=opset, seed=seed)


def load_agent_checkpoint(path: str | os.PathLike, cfg: Config):
    """Build the RLPD agent for ``cfg``'s task and load a learner checkpoint into it.

    Uses ``robot_rl.learning.checkpoint`` (pickle-free: safetensors + JSON). The agent's
    hyperparameters are taken from the checkpoint itself when it records them (so the
    architecture always fits), else from ``cfg.agent``; the device is forced to CPU for export.
    Raises ``CheckpointError`` (a ``ValueError``) naming the problem.
    """
    from dataclasses import asdict, replace

    from robot_rl.learning import checkpoint as ckpt
    from robot_rl.learning.config import RLPDConfig
    from robot_rl.learning.rlpd import RLPDAgent

    path = Path(path)
    if not ckpt.checkpoint_exists(str(path)):
        raise FileNotFoundError(f"no robot_rl checkpoint at {path} (expected a directory with "
                                f"{ckpt.STATE} and {ckpt.TENSORS})")
    state = ckpt.load_checkpoint(str(path))
    saved = state.get("agent", {}).get("config") if isinstance(state, dict) else None
    agent_cfg = cfg.agent_settings()
    if isinstance(saved, dict):
        known = set(asdict(RLPDConfig()))
        agent_cfg = RLPDConfig.from_dict({k: v for k, v in saved.items() if k in known})
    agent_cfg = replace(agent_cfg, device="cpu")
    obs_space, act_space, _ = task_spaces(cfg)
    agent = RLPDAgent(obs_space, act_space, agent_cfg)
    ckpt.load_agent(str(path), agent)
    return agent


def use_best_policy(agent, run_dir: str | os.PathLike) -> dict | None:
    """Load the best evaluation round's actor weights of a learner run into ``agent``
    (``robot_rl.learning.evaluation_rounds``); the round's record, or None when the run has none."""
    from robot_rl.learning.evaluation_rounds import load_best_policy
    best = load_best_policy(run_dir)
    if best is None:
        return None
    agent.load_actor_state_dict(best[0])
    return best[1]


# --------------------------------------------------------------------------- CLI


def export_main(args) -> int:
    """``robot-rl export --checkpoint CKPT --config YAML --out models/policy.onnx`` (exit codes
    as ``robot_rl.deploy.export.main``: 0 ok, 1 error, 2 usage, 3 parity failure)."""
    import sys

    from robot_rl.config import load_config
    from robot_rl.deploy.errors import ExportError, ExportParityError, MetadataError
    from robot_rl.schema import ConfigError

    try:
        overrides = {}
        for item in args.set or []:
            key, sep, value = item.partition("=")
            if not sep:
                print(f"error: --set expects key=value, got {item!r}", file=sys.stderr)
                return 2
            import yaml
            overrides[key] = yaml.safe_load(value)
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 2
    run_id = args.run_id or Path(args.checkpoint).resolve().parent.name or "unknown"
    try:
        agent = load_agent_checkpoint(args.checkpoint, cfg)
        if getattr(args, "best", False):
            run_dir = Path(args.checkpoint).resolve().parent
            best = use_best_policy(agent, run_dir)
            if best is None:
                raise FileNotFoundError(f"--best: no evaluation round was kept under "
                                        f"{run_dir}/actors/*/best_policy (set "
                                        f"actor.evaluate_every while training)")
            print(f"exporting the best evaluation round: {best['successes']}/{best['episodes']}"
                  f" at the actor's env step {best['started_at_step']} (weights "
                  f"v{best['weights_version']})")
        result = export_agent(agent, cfg, args.out, run_id, args.version,
                              parity_samples=args.parity_samples, atol=args.atol,
                              exporter=args.exporter, opset=args.opset, seed=args.seed)
    except ExportParityError as exc:
        print(f"export refused: {exc}", file=sys.stderr)
        return 3
    except (ExportError, MetadataError, OSError, RuntimeError, ValueError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    info = result.metadata.export
    print(f"wrote {result.onnx_path} and {result.metadata_path}\n"
          f"  run {run_id} v{args.version}, {result.metadata.control_rate_hz} Hz, "
          f"observations {list(result.metadata.observation_names)}, actions "
          f"{list(result.metadata.action.names)}\n"
          f"  exporter={info.exporter} opset={info.opset} parity max|diff|="
          f"{info.parity_max_abs_diff:.2e} (atol {info.parity_atol:.0e})")
    return 0
