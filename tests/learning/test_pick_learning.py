"""The agent learns the in-process MuJoCo pick-and-lift task from 20 scripted demonstrations.

A learning test that can fail: the deterministic success rate after a CI-sized number of env
steps must be clearly above the start (the agent with only the demonstrations loaded). The
settings are those of the demo's training stage (2 critics, BC term 2, 50-step episodes) at
half its update-to-data ratio (2, not 4): half the CI time, and at this size still 0 % -> 65-95 %
for seeds 0-3 (session 18); bench/sample_efficiency.py measures the full curve.
"""
import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.envs.pick_cube import PickCubeEnv
from robot_rl.learning.record_demos import record
from robot_rl.learning.replay import ReplayBuffer
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig
from robot_rl.learning.train_gym import TrainGymConfig, evaluate, train

STEPS = 2000
EVAL_EPISODES = 20


@pytest.fixture(scope="module")
def cfg():
    return load_config(None, {"task.observations": ["state", "object"], "cameras": [],
                              "tactile": [], "task.max_episode_steps": 50})


def success_rate(agent, env) -> float:
    # Sparse reward, success is terminal: an episode's return is 1 exactly when it succeeded.
    return float(np.mean([r > 0 for r in evaluate(agent, env, EVAL_EPISODES)]))


def test_learns_pick_and_lift_from_20_demos(cfg, tmp_path):
    demos = str(tmp_path / "demos")
    assert record(cfg, demos, 20, seed=50_000, verbose=False)["episodes"] == 20
    agent_cfg = RLPDConfig(num_critics=2, utd_ratio=2, bc_weight=2.0, discount=0.97, seed=0)
    env = PickCubeEnv(cfg)

    start = RLPDAgent(env.observation_space, env.action_space, agent_cfg)
    start.fit_input_normalization(ReplayBuffer.load(demos, resume=False, verbose=False).observations())
    start_rate = success_rate(start, env)

    result = train(env, TrainGymConfig(agent=agent_cfg, learning_starts=0, verbose=False, seed=0),
                   STEPS, demos_path=demos)
    final_rate = success_rate(result["agent"], env)
    print(f"pick-and-lift success: start {start_rate:.0%}, after {STEPS} env steps {final_rate:.0%}")
    assert final_rate >= start_rate + 0.4, (start_rate, final_rate)
