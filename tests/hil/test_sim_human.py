"""The simulated human corrects a drifting policy in the in-process sim, and leaves the expert
alone."""
import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.envs.expert import PickExpert
from robot_rl.hil.sim_human import SimHuman

AWAY = np.array([-0.3, 0.8, 0.2, -1.0], np.float32)  # drifts up and sideways, gripper open


def run(env, policy, human, seed):
    """One episode; the human's command replaces the policy's while it is active."""
    env.reset(seed=seed)
    if human is not None:
        human.reset()
    steps = active = 0
    done, info = False, {}
    while not done:
        snap = env.snapshot
        action = policy(snap)
        if human is not None:
            cmd = human.step(snap)
            if cmd.active:
                action, active = cmd.action, active + 1
        _, _, terminated, truncated, info = env.step(action)
        steps += 1
        done = terminated or truncated
    return info["success"], steps, active


@pytest.fixture
def env(env_factory):
    return env_factory()


def test_takes_over_a_drifting_policy_and_its_corrections_succeed(env):
    cfg = env.cfg
    seeds = [0, 1, 2]
    alone = [run(env, lambda s: AWAY, None, seed)[0] for seed in seeds]
    assert not any(alone)  # the bad policy never succeeds by itself
    human = SimHuman.from_config(cfg)
    results = [run(env, lambda s: AWAY, human, seed) for seed in seeds]
    assert all(success for success, _, _ in results), (results, human.log)
    assert all(0 < active < steps for _, steps, active in results)  # the policy acted first
    assert human.takeovers >= len(seeds)
    assert any("left the region" in why for _, why in human.log)


def test_no_progress_triggers_a_takeover(env):
    human = SimHuman.from_config(env.cfg)
    hover = np.array([0.0, 0.0, 0.0, -1.0], np.float32)  # stays where it is: never approaches
    success, steps, active = run(env, lambda s: hover, human, 5)
    assert success and active > 0
    first = next(why for _, why in human.log if why.startswith("take over"))
    assert "no progress" in first
    # It waited the configured K steps (plus the grace period) before taking over.
    assert steps - active >= human.cfg.no_progress_steps


def test_does_not_intervene_on_the_expert(env):
    cfg = env.cfg
    human = SimHuman.from_config(cfg)
    # Seeds where the scripted expert grasps cleanly (in seeds 2 and 4 it fumbles the cube and
    # the simulated human rightly steps in).
    for seed in (0, 1, 3, 5, 6):
        expert = PickExpert(cfg.task.max_step_pos, cfg.task.lift_height)
        success, _, active = run(env, lambda s: expert.act(s), human, seed)
        assert success and active == 0, human.log
    assert human.takeovers == 0


def test_probability_zero_never_watches(env):
    cfg = load_config(None, {"hil.sim_human.prob": 0.0})
    human = SimHuman.from_config(cfg)
    success, _, active = run(env, lambda s: AWAY, human, 0)
    assert not success and active == 0 and human.takeovers == 0


def test_needs_the_object_pose(env):
    env.reset(seed=0)
    snap = env._snap
    snap.object_pos = None
    with pytest.raises(ValueError, match="object pose"):
        SimHuman.from_config(env.cfg).step(snap)
