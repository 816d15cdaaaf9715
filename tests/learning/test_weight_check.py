"""Weight sanity beyond finiteness: the policy's output on a probe batch (issue 19, item 3)."""
import numpy as np
import pytest
import torch
from gymnasium import spaces

from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig
from robot_rl.learning.weight_check import WeightCheckError, WeightProbe


def _agent(discrete_gripper=False, images=False):
    obs = {"state": spaces.Box(-np.inf, np.inf, (8,), np.float32),
           "tactile_left": spaces.Box(0, 5, (4, 4), np.float32)}
    if images:
        obs["image_front"] = spaces.Box(0, 255, (16, 16, 3), np.uint8)
    cfg = RLPDConfig(hidden_dims=(32, 32), num_critics=2, discrete_gripper=discrete_gripper,
                     gripper_dim=-1 if not discrete_gripper else 3)
    cfg.encoder.cnn_channels = 4
    return RLPDAgent(spaces.Dict(obs), spaces.Box(-1, 1, (4,), np.float32), cfg)


def _scaled(sd, factor):
    return {part: {k: v * factor if v.is_floating_point() and "normalizer" not in k else v
                   for k, v in params.items()} for part, params in sd.items()}


@pytest.mark.parametrize("kwargs", [{}, {"discrete_gripper": True}, {"images": True}])
def test_healthy_weights_pass_and_huge_finite_ones_are_refused(kwargs):
    agent = _agent(**kwargs)
    probe = WeightProbe(agent)
    stats = probe.check(agent.actor_state_dict())
    assert np.isfinite(stats["max_abs_mean"])
    huge = _scaled(agent.actor_state_dict(), 1e30)  # finite weights: pass a NaN/inf check
    assert all(torch.isfinite(v).all() for p in huge.values() for v in p.values())
    with pytest.raises(WeightCheckError, match="not finite"):
        probe.check(huge)
    # the live agent was not touched by the failed candidate
    obs = {"state": np.ones(8, np.float32), "tactile_left": np.ones((4, 4), np.float32)}
    if kwargs.get("images"):
        obs["image_front"] = np.zeros((16, 16, 3), np.uint8)
    assert np.all(np.isfinite(agent.act(obs, deterministic=True)))


def test_wrong_architecture_is_refused():
    probe = WeightProbe(_agent())
    with pytest.raises(WeightCheckError, match="do not fit"):
        probe.check(_agent(discrete_gripper=True).actor_state_dict())
    with pytest.raises(WeightCheckError, match="do not fit"):
        probe.check({"encoder": {}})


def test_nan_log_std_is_refused():
    agent = _agent()
    sd = agent.actor_state_dict()
    last_bias = [k for k in sd["actor"] if k.endswith("bias")][-1]
    sd["actor"][last_bias] = torch.full_like(sd["actor"][last_bias], float("nan"))
    with pytest.raises(WeightCheckError, match="not finite"):
        WeightProbe(agent).check(sd)
