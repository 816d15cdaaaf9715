"""Exporting an RLPD agent with metadata built from the robot configuration."""
from __future__ import annotations

import json

import numpy as np
import pytest

from robot_rl.config import load_config, save_config
from robot_rl.deploy.agent_export import (build_metadata, constant_action_agent, export_agent, make_agent,
                                          robot_joint_names, robot_spec)
from robot_rl.deploy.errors import ModelMismatchError
from robot_rl.deploy.onnx_policy import OnnxPolicy

SMALL = {"agent.hidden_dims": [32, 32], "agent.num_critics": 2, "cameras": []}


@pytest.fixture(scope="module")
def cfg():
    return load_config(None, SMALL)


@pytest.fixture(scope="module")
def agent(cfg):
    return make_agent(cfg)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, agent, cfg):
    path = tmp_path_factory.mktemp("agent") / "policy.onnx"
    return export_agent(agent, cfg, path, "run-42", "2.1.0")


def test_export_writes_one_onnx_with_config_metadata_and_parity(exported, cfg):
    assert exported.onnx_path.exists() and not list(exported.onnx_path.parent.glob("*.data"))
    meta = json.loads(exported.metadata_path.read_text())
    assert [o["name"] for o in meta["observations"]] == ["state", "tactile_left", "tactile_right"]
    assert [o["shape"] for o in meta["observations"]] == [[8], [4, 4], [4, 4]]
    assert {o["dtype"] for o in meta["observations"]} == {"float32"}
    assert all(o["scale"] == 1.0 for o in meta["observations"])
    assert meta["action"] == {"names": ["dx", "dy", "dz", "gripper"], "scale": [1.0] * 4, "offset": [0.0] * 4}
    assert meta["control_rate_hz"] == cfg.control_rate_hz
    assert meta["robot"] == {"description_id": cfg.robot.urdf, "joint_names": robot_joint_names(cfg)}
    assert meta["training"] == {"run_id": "run-42", "version": "2.1.0"}
    assert meta["export"]["parity_max_abs_diff"] <= 1e-5
    assert exported.max_abs_diff <= 1e-5


def test_onnx_policy_matches_the_agent_on_task_observations(exported, agent, cfg):
    policy = OnnxPolicy(exported.onnx_path, providers="cpu")
    policy.check_against(robot_spec(cfg, cfg.control_rate_hz))
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs = {"state": rng.normal(size=8).astype(np.float32),
               "tactile_left": rng.uniform(0, 5, (4, 4)).astype(np.float32),
               "tactile_right": rng.uniform(0, 5, (4, 4)).astype(np.float32)}
        np.testing.assert_allclose(policy(obs), agent.act(obs, deterministic=True), atol=1e-5)


@pytest.mark.parametrize("overrides, expected", [
    ({"control_rate_hz": 100.0}, "control_rate_hz: expected 10.0, found 100.0"),
    ({"robot.gripper_joints": ["a", "b"]}, "joint 'panda_finger_joint1': expected 'present', found 'missing on robot'"),
    ({"tactile": [{"name": "left", "shape": [4, 5]}, {"name": "right", "shape": [4, 4]}]},
     "observation 'tactile_left' shape: expected [4, 4], found [4, 5]"),
    ({"task.observations": ["state"]}, "observation 'tactile_left': expected 'shape [4, 4]', found 'missing on robot'"),
    ({"robot.urdf": "other.urdf"}, "robot_description_id"),
])
def test_robot_spec_mismatches_are_named(exported, overrides, expected):
    other = load_config(None, {**SMALL, **overrides})
    with pytest.raises(ModelMismatchError) as err:
        exported.metadata.check_against(robot_spec(other))
    assert expected in str(err.value)


def test_metadata_refuses_an_agent_for_another_task(cfg):
    with pytest.raises(ValueError, match="do not match the task"):
        build_metadata(cfg, "r", observation_order=["state"])


def test_cli_exports_a_learner_checkpoint(tmp_path, agent, cfg):
    from robot_rl.deploy.export import main
    from robot_rl.learning.checkpoint import save_agent

    ckpt = tmp_path / "run-7" / "checkpoint"
    save_agent(str(ckpt), agent)
    cfg_path = tmp_path / "config.yaml"
    save_config(cfg, cfg_path)
    out = tmp_path / "models" / "policy.onnx"
    assert main(["--checkpoint", str(ckpt), "--config", str(cfg_path), "--out", str(out),
                 "--parity-samples", "8"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training"]["run_id"] == "run-7"
    obs = {"state": np.ones(8, np.float32), "tactile_left": np.zeros((4, 4), np.float32),
           "tactile_right": np.zeros((4, 4), np.float32)}
    np.testing.assert_allclose(OnnxPolicy(out, providers="cpu")(obs), agent.act(obs, deterministic=True), atol=1e-5)


def test_cli_usage_errors(tmp_path, capsys):
    from robot_rl.deploy.export import main

    assert main(["--config", "x.yaml", "--out", str(tmp_path / "p.onnx")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "missing"), "--config", str(tmp_path / "none.yaml"),
                 "--out", str(tmp_path / "p.onnx")]) == 2  # config file does not exist
    cfg_path = tmp_path / "c.yaml"
    save_config(load_config(None, SMALL), cfg_path)
    assert main(["--checkpoint", str(tmp_path / "missing"), "--config", str(cfg_path),
                 "--out", str(tmp_path / "p.onnx")]) == 1
    assert "no robot_rl checkpoint" in capsys.readouterr().err


def test_constant_action_agent(cfg):
    a = constant_action_agent(cfg, [1.0, -0.5, 0.0, -1.0])
    obs = {"state": np.ones(8, np.float32), "tactile_left": np.ones((4, 4), np.float32),
           "tactile_right": np.zeros((4, 4), np.float32)}
    np.testing.assert_allclose(a.act(obs, deterministic=True), [1.0, -0.5, 0.0, -1.0], atol=1e-5)


def test_deployed_loop_reproduces_the_training_env(exported, cfg):
    """Controller tick (observation, policy, command, safety) == PickCubeEnv.step when nothing clamps."""
    from robot_rl.envs.pick_cube import PickCubeEnv
    from robot_rl.deploy.evaluation import evaluate_deployed

    free = load_config(None, {**SMALL, "task.max_episode_steps": 15, "safety": {
        # (a dotted safety.* override would start from SafetyConfig's class defaults: give the section)
        "command_mode": "ee_position", "ee_speed_max": 0.0, "extra_min": [0.0], "extra_max": [0.08],
        "workspace_min": [-2.0, -2.0, -1.0], "workspace_max": [2.0, 2.0, 2.0]}})
    policy = OnnxPolicy(exported.onnx_path, providers="cpu")
    trace: list = []
    rate = evaluate_deployed(free, exported.onnx_path, 1, seed=3, trace=trace)
    assert rate == 0.0 and len(trace) == 15
    env = PickCubeEnv(free)
    try:
        obs, _ = env.reset(seed=3)
        for _, deployed_obs, res in trace:
            for k in obs:
                np.testing.assert_allclose(deployed_obs[k], obs[k], atol=1e-6, err_msg=k)
            assert res.report.forwarded and not res.report.clamps
            np.testing.assert_allclose(res.action, policy(obs), atol=1e-6)
            obs, *_ = env.step(res.action)
    finally:
        env.close()


def test_evaluate_deployed_counts_successes(exported, cfg):
    from robot_rl.deploy.evaluation import evaluate_deployed

    short = load_config(None, {**SMALL, "task.max_episode_steps": 5})
    assert evaluate_deployed(short, exported.onnx_path, 2) == 0.0  # an untrained agent does not lift the cube


def test_rehearsal_twin_runs_the_policy_path_and_leaves_the_real_core_alone(exported, cfg):
    """The controller node's pre-deadline rehearsal (deploy.warm_s) steps a twin core: it must
    run the whole POLICY path (engaging itself) and share nothing with the real core but the
    policy."""
    from robot_rl.deploy.safety import SafetyMode
    from robot_rl.envs.pick_cube import PickCubeEnv
    from robot_rl.deploy.controller_core import ControllerCore

    policy = OnnxPolicy(exported.onnx_path, providers="cpu")
    env = PickCubeEnv(cfg)
    try:
        env.reset(seed=1)
        snap = env.snapshot
        core = ControllerCore(cfg, policy, rate_hz=cfg.control_rate_hz)
        twin = core.twin()
        assert twin.policy is policy and twin.safety is not core.safety and twin.task is not core.task
        stamps = {s: snap.stamp for s in core.sensors}
        for _ in range(3):
            res = twin.rehearse(snap, snap.stamp, stamps)
        assert twin.safety.mode == SafetyMode.POLICY and res.report.forwarded
        np.testing.assert_allclose(res.action, policy(core.task.observe(snap)), atol=1e-6)
        assert core.safety.mode == SafetyMode.IDLE and core.ticks == 0 and core.last_obs is None
        stale = {s: snap.stamp - 10.0 for s in core.sensors}  # a fault: the twin holds, re-engages later
        assert not twin.rehearse(snap, snap.stamp, stale).report.forwarded
        assert twin.rehearse(snap, snap.stamp, stamps).report.forwarded
    finally:
        env.close()


def test_cli_exports_the_best_evaluation_round_with_best(tmp_path, agent, cfg, capsys):
    """``--best``: the actor weights an evaluation round kept, not the checkpoint's last."""
    import torch

    from robot_rl.deploy.export import main
    from robot_rl.learning.checkpoint import save_agent
    from robot_rl.learning.evaluation_rounds import EvaluationRounds

    ckpt = tmp_path / "run" / "checkpoint"
    save_agent(str(ckpt), agent)
    cfg_path = tmp_path / "config.yaml"
    save_config(cfg, cfg_path)
    out = tmp_path / "policy.onnx"
    args = ["--checkpoint", str(ckpt), "--config", str(cfg_path), "--out", str(out),
            "--parity-samples", "8", "--best"]
    assert main(args) == 1
    assert "no evaluation round was kept" in capsys.readouterr().err
    kept = make_agent(cfg)  # other weights than the checkpoint's
    with torch.no_grad():
        for p in kept.actor.parameters():
            p.add_(0.5)
    rounds = EvaluationRounds(10, 1, tmp_path / "run" / "actors" / "actor_0" / "best_policy")
    rounds.start(3, 10)
    rounds.keep(rounds.episode_ended(True, 0), kept.actor_state_dict())
    assert main(args) == 0
    assert "best evaluation round: 1/1" in capsys.readouterr().out
    obs = {"state": np.ones(8, np.float32), "tactile_left": np.zeros((4, 4), np.float32),
           "tactile_right": np.zeros((4, 4), np.float32)}
    deployed = OnnxPolicy(out, providers="cpu")(obs)
    np.testing.assert_allclose(deployed, kept.act(obs, deterministic=True), atol=1e-5)
    assert not np.allclose(deployed, agent.act(obs, deterministic=True), atol=1e-3)
