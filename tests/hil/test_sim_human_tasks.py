"""The simulated human on a task other than the pick (robot_rl/hil/sim_human.py with
``Task.human_view`` and ``Task.expert``): it corrects the peg insertion and hands back, leaves
the peg expert alone, and refuses a task it cannot watch or correct. In-process MuJoCo."""
import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.hil.sim_human import SimHuman
from robot_rl.schema import ConfigError
from tests.hil.test_sim_human import run  # one episode, the human's command over the policy's

HOVER = np.zeros(3, np.float32)  # the peg stays above the block: never inserts


@pytest.fixture(scope="module")
def peg_env():
    from robot_rl.envs.pick_cube import SimTaskEnv
    from robot_rl.paths import shared_file
    env = SimTaskEnv(load_config(str(shared_file("config", "peg_insert.yaml")), {"cameras": []}))
    yield env
    env.close()


def test_takes_over_a_hovering_peg_and_hands_it_back_in_the_hole(peg_env):
    human = SimHuman.from_config(peg_env.cfg)
    assert human.action_dim == 3  # the task's own action (dx dy dz), not the pick's
    success, steps, active = run(peg_env, lambda s: HOVER, human, 0)
    events = [why for _, why in human.log]
    assert events[0].startswith("take over: no progress toward the goal"), events
    assert events[1].startswith("release: corrected: the peg's tip"), events
    assert 0 < active < steps and success, (steps, active, events)
    # It judged only after the grace period and K steps without progress.
    assert steps - active >= human.cfg.no_progress_steps


def test_leaves_the_peg_expert_alone(peg_env):
    human = SimHuman.from_config(peg_env.cfg)
    for seed in (0, 1, 2):
        expert = peg_env.task.expert()
        success, _, active = run(peg_env, expert.act, human, seed)
        assert success and active == 0, (seed, human.log)


def test_a_task_without_an_expert_is_refused():
    cfg = load_config(None, {"task.name": "tests.fixtures.user_task:PeeksAtTheCube",
                             "hil.device": "sim_human"})
    with pytest.raises(ConfigError, match="no scripted expert"):
        SimHuman.from_config(cfg)


def test_a_task_the_human_cannot_judge_is_refused():
    cfg = load_config(None, {"task.name": "tests.fixtures.user_task:ReachTask",
                             "task.observations": ["state"]})
    with pytest.raises(ConfigError, match="human_view"):
        SimHuman.from_config(cfg)
