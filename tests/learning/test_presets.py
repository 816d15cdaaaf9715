"""Hyperparameters that suit the run: the demonstrations' recipe when a run has demonstrations,
RLPD's own otherwise (``RLPDConfig.preset``), with every value a user sets kept."""
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.config import load_config
from robot_rl.learning.config import PRESETS, RLPDConfig
from robot_rl.learning.rlpd import RLPDAgent
from robot_rl.learning.train_gym import TrainGymConfig, train
from robot_rl.schema import ConfigError

from tests.learning.test_train_gym import PointReach, point_reach_demos

RECIPE = {"num_critics": 2, "utd_ratio": 4, "bc_weight": 2.0}
RLPD = {"num_critics": 10, "utd_ratio": 8, "bc_weight": 0.0}


def _picked(cfg: RLPDConfig) -> dict:
    return {k: getattr(cfg, k) for k in RECIPE}


def test_auto_takes_the_recipe_only_with_demonstrations_and_a_set_value_wins():
    assert dict(PRESETS["demos"]) == RECIPE and dict(PRESETS["rlpd"]) == RLPD
    with_demos = RLPDConfig().resolved(with_demos=True)
    assert _picked(with_demos) == RECIPE and with_demos.preset == "demos"
    assert _picked(RLPDConfig().resolved(with_demos=False)) == RLPD
    assert _picked(RLPDConfig(preset="rlpd").resolved(with_demos=True)) == RLPD
    assert _picked(RLPDConfig(preset="demos").resolved(with_demos=False)) == RECIPE
    mine = RLPDConfig(num_critics=5, bc_weight=0.5).resolved(with_demos=True)
    assert _picked(mine) == {"num_critics": 5, "utd_ratio": 4, "bc_weight": 0.5}
    # An agent built without the run's context cannot know about demonstrations: RLPD's.
    agent = RLPDAgent(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32),
                      RLPDConfig(hidden_dims=(8, 8)))
    assert _picked(agent.config) == RLPD


def test_the_robot_configuration_resolves_by_the_learners_demonstrations(tmp_path):
    assert _picked(load_config(None).agent_settings()) == RLPD
    cfg = load_config(None, {"learner.demos": str(tmp_path / "demos")})
    assert _picked(cfg.agent_settings()) == RECIPE
    cfg = load_config(None, {"learner.demos": str(tmp_path / "demos"), "agent.utd_ratio": 1})
    assert _picked(cfg.agent_settings()) == {**RECIPE, "utd_ratio": 1}
    with pytest.raises(ConfigError, match=r"agent\.preset.*auto or one of \['demos', 'rlpd'\].*'fast'"):
        load_config(None, {"agent.preset": "fast"})
    with pytest.raises(ConfigError, match=r"agent\.bc_weight"):
        load_config(None, {"agent.bc_weight": -1})


def test_train_gym_given_demonstrations_trains_with_the_recipe(tmp_path):
    cfg = TrainGymConfig(agent=RLPDConfig(hidden_dims=(16, 16), batch_size=16), learning_starts=20,
                         buffer_capacity=200, verbose=False)
    res = train(PointReach(), cfg, 30, demos=point_reach_demos(tmp_path / "demos"))
    agent = res["agent"]
    assert _picked(agent.config) == RECIPE
    # UTD 4: four critic minibatches per update, one update per env step after the start
    assert agent.num_critic_updates == 4 * agent.num_actor_updates > 0
    assert agent.state_dict()["config"]["preset"] == "demos"  # what export rebuilds from
    assert _picked(train(PointReach(), cfg, 25)["agent"].config) == RLPD


def test_a_checkpoint_from_another_preset_is_refused_by_name():
    obs, act = spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32)
    ten = RLPDAgent(obs, act, RLPDConfig(hidden_dims=(8, 8), preset="rlpd"))
    two = RLPDAgent(obs, act, RLPDConfig(hidden_dims=(8, 8), preset="demos"))
    before = {k: v.clone() for k, v in two.critic.state_dict().items()}
    with pytest.raises(ValueError, match=r"10 critics \(preset 'rlpd'\).*2 \(preset 'demos'\).*"
                                         r"agent\.num_critics: 10"):
        two.load_state_dict(ten.state_dict())
    assert all(v.equal(two.critic.state_dict()[k]) for k, v in before.items())  # left as it was
