"""Issue 25: Q-filtered and annealed behaviour cloning, and train-gym keeping the best policy.

The Q-filter tests give the critic ensemble weights whose Q is known in closed form
(Q(s, a) = 1 where the first action component is positive, else 0), and the actor a constant
deterministic action, so the filter's mask, the cloned share and the BC value are exact."""
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig
from robot_rl.learning.train_gym import TrainGymConfig, evaluate_policy, train

from tests.learning.test_gym_api import SMALL, LineReach

OBS = spaces.Box(-np.inf, np.inf, (5,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (3,), np.float32)


def _step_critic(agent: RLPDAgent) -> None:
    """Q(s, a) = relu(sign(a[0])): one hidden layer of two units, +a0 and -a0; LayerNorm over
    the two maps them to (+1, -1) * sign(a0); the head reads the first unit."""
    feat_dim = agent.encoder.out_dim
    with torch.no_grad():
        w0, b0, c0, w1, b1 = agent.critic.param_list()
        for p in (w0, b0, c0, w1, b1):
            p.zero_()
        w0[:, feat_dim, 0], w0[:, feat_dim, 1] = 1.0, -1.0
        w1[:, 0, 0] = 1.0


def _constant_actor(agent: RLPDAgent, action) -> None:
    """The deterministic action is ``action`` in every state (head weights 0, bias atanh)."""
    with torch.no_grad():
        agent.actor.head.weight.zero_()
        agent.actor.head.bias.zero_()
        agent.actor.head.bias[: len(action)] = torch.atanh(torch.as_tensor(action, dtype=torch.float32))


def _agent(step_critic: bool = True, **kw) -> RLPDAgent:
    cfg = dict(num_critics=2, critic_subset=2, utd_ratio=1, batch_size=8, hidden_dims=(2,), seed=0, bc_weight=2.0)
    cfg.update(kw)
    agent = RLPDAgent(OBS, ACT, RLPDConfig(**cfg))
    if step_critic:
        _step_critic(agent)
    return agent


def test_step_critic_has_the_closed_form_q():
    agent = _agent()
    feat = torch.randn(4, agent.encoder.out_dim)
    a = torch.tensor([[0.5, 0, 0], [-0.5, 0, 0], [0.1, 0.9, -0.9], [-0.2, 0.3, 0.3]])
    q = agent.critic(torch.cat([feat, a], -1))
    assert torch.allclose(q, torch.tensor([1.0, 0.0, 1.0, 0.0]).expand(2, 4), atol=1e-3)


def test_q_filter_clones_only_where_the_demo_action_is_rated_higher():
    agent = _agent(bc_q_filter=True)
    policy = torch.tensor([-0.3, 0.2, 0.1])
    _constant_actor(agent, policy)
    demo_feat = torch.randn(4, agent.encoder.out_dim)
    # Q(demo) = 1, 0, 1, 0 and Q(pi) = 0: clone rows 0 and 2 only (a tie is not "higher")
    demo_action = torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.4, 0.0], [0.9, -0.9, 0.2], [-0.8, 0.0, 0.5]])
    mask = agent.q_filter_mask(demo_feat, demo_action, policy.expand(4, -1))
    assert mask.tolist() == [1.0, 0.0, 1.0, 0.0]

    feat = torch.randn(8, agent.encoder.out_dim)
    eps = torch.zeros(8, 3)
    _, _, bc, _, cloned = agent._actor_loss(feat, eps, demo_feat, demo_action, torch.tensor(2.0))
    sq = (policy - demo_action).pow(2).sum(-1)
    assert cloned.item() == pytest.approx(0.5)
    assert bc.item() == pytest.approx(((sq[0] + sq[2]) / 4).item(), rel=1e-4)  # mean over all 4 rows

    # once the policy's action is rated as high as every demo action, nothing is cloned
    _constant_actor(agent, torch.tensor([0.99, 0.0, 0.0]))
    _, _, bc, _, cloned = agent._actor_loss(feat, eps, demo_feat, demo_action, torch.tensor(2.0))
    assert cloned.item() == 0.0 and bc.item() == 0.0


def test_q_filter_gradient_comes_only_from_cloned_states():
    """The actor's BC gradient is the one of the cloned rows alone (Q-filtered BC), while the
    unfiltered term pulls toward every demo action."""
    grads = {}
    demo_feat = torch.randn(4, 5)
    demo_action = torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.4, 0.0], [0.9, -0.9, 0.2], [-0.8, 0.0, 0.5]])
    for name, q_filter, rows in (("filtered", True, slice(None)), ("cloned rows", False, [0, 2]),
                                 ("all rows", False, slice(None))):
        agent = _agent(bc_q_filter=q_filter)
        _constant_actor(agent, torch.tensor([-0.3, 0.2, 0.1]))
        agent.log_alpha.data.fill_(-30.0)  # no entropy term: the BC gradient alone on the bias
        feat = torch.zeros(1, 5)  # the SAC part on a state whose Q gradient is 0 (flat step)
        loss, _, _, _, _ = agent._actor_loss(feat, torch.zeros(1, 3), demo_feat[rows], demo_action[rows],
                                             torch.tensor(1.0))
        agent.actor.zero_grad()
        loss.backward()
        grads[name] = agent.actor.head.bias.grad[:3].clone()
    # filtered mean over 4 rows of 2 kept = half the mean over the 2 kept rows
    assert torch.allclose(grads["filtered"], 0.5 * grads["cloned rows"], atol=1e-6)
    assert not torch.allclose(grads["filtered"], grads["all rows"], atol=1e-3)


def test_bc_weight_decays_linearly_then_holds():
    agent = _agent(bc_weight=2.0, bc_decay_updates=100, bc_final_weight=0.5)
    seen = []
    for n in (0, 50, 100, 1000):
        agent.num_actor_updates = n
        seen.append(agent.bc_weight_now())
    assert seen == pytest.approx([2.0, 1.25, 0.5, 0.5])
    assert _agent(bc_weight=2.0).bc_weight_now() == 2.0


def test_update_reports_the_bc_schedule_and_cloned_share():
    agent = _agent(step_critic=False, bc_q_filter=True, bc_decay_updates=4, hidden_dims=(16, 16))
    g = torch.Generator().manual_seed(0)

    def batch():
        return {"obs": {"state": torch.randn(4, 5, generator=g)}, "next_obs": {"state": torch.randn(4, 5, generator=g)},
                "action": torch.rand(4, 3, generator=g) * 2 - 1, "reward": torch.zeros(4), "terminated": torch.zeros(4)}

    weights = [agent.update(batch(), batch())["bc_weight"] for _ in range(5)]
    assert weights == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])
    m = agent.update(batch(), batch())
    assert 0.0 <= m["bc_cloned_fraction"] <= 1.0 and m["bc_loss"] >= 0.0


@pytest.mark.parametrize("bad", [dict(bc_decay_updates=-1), dict(bc_final_weight=-0.5), dict(bc_weight=-1.0)])
def test_bad_bc_settings_are_refused_by_name(bad):
    with pytest.raises(Exception, match=next(iter(bad))):
        RLPDConfig(**bad).validate()


# -- keep-best ---------------------------------------------------------------------------------
def _set_constant(agent, value: float) -> None:
    with torch.no_grad():
        agent.actor.head.weight.zero_()
        agent.actor.head.bias.zero_()
        agent.actor.head.bias[0] = math.atanh(value)


@pytest.mark.parametrize("keep_best", [True, False])
def test_train_gym_returns_the_best_evaluated_policy(keep_best):
    """The actor is made good before the first evaluation and spoiled right after it (no
    updates: learning_starts beyond the run), as a policy that drifts would be: with keep_best
    the returned agent (what --checkpoint saves and deployment exports) acts as the first,
    best-evaluated one did; without it, as the last."""
    def callback(progress):
        if progress["event"] == "episode" and progress["step"] < 100:
            _set_constant(progress["agent"], 0.99)  # straight to the goal
        if progress["event"] == "eval":
            _set_constant(progress["agent"], -0.99)  # away from it

    cfg = TrainGymConfig(agent=RLPDConfig(**SMALL), eval_every=100, eval_episodes=4, learning_starts=10_000,
                         keep_best=keep_best, verbose=False)
    res = train(LineReach(), cfg, 300, callback=callback)
    rates = [e["success_rate"] for e in res["evaluations"]]
    assert rates == [1.0, 0.0, 0.0] and res["eval_success_rate"] == 0.0  # the last policy fails
    held = evaluate_policy(res["agent"], LineReach(), 4)["success_rate"]
    if keep_best:
        assert res["kept_step"] == 100 and held == 1.0
        best = res["best"]["actor_state"]["actor"]
        now = res["agent"].actor_state_dict()["actor"]
        assert all(torch.equal(best[k], now[k]) for k in best)
    else:
        assert res["kept_step"] == 300 and held == 0.0
