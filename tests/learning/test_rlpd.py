import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces

from robot_rl.learning.gripper_critic import GripperCritic, discretize_gripper
from robot_rl.learning.networks import EncoderConfig
from robot_rl.learning.rlpd import EnsembleCritic, RLPDAgent, RLPDConfig, has_native_bf16, td_target

OBS = spaces.Box(-np.inf, np.inf, (5,), np.float32)
ACT = spaces.Box(np.array([-2.0, 0.0, -1.0], np.float32), np.array([2.0, 1.0, 3.0], np.float32))


def _cfg(**kw):
    base = dict(num_critics=4, critic_subset=2, utd_ratio=2, batch_size=16, hidden_dims=(32, 32), seed=0)
    base.update(kw)
    return RLPDConfig(**base)


def _batch(n, obs_dim=5, act_space=ACT, seed=0, terminated=None, truncated=None):
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.as_tensor(act_space.low), torch.as_tensor(act_space.high)
    return {
        "obs": {"state": torch.randn(n, obs_dim, generator=g)},
        "next_obs": {"state": torch.randn(n, obs_dim, generator=g)},
        "action": lo + (hi - lo) * torch.rand(n, act_space.shape[0], generator=g),
        "reward": torch.randn(n, generator=g),
        "terminated": torch.zeros(n) if terminated is None else terminated,
        "truncated": torch.zeros(n) if truncated is None else truncated,
    }


def _params(agent):
    return torch.cat([p.detach().reshape(-1) for p in list(agent.critic.parameters()) + list(agent.actor.parameters())])


# --------------------------------------------------------------------------- #
def test_td_target_truncation_bootstraps_termination_does_not():
    r = torch.tensor([1.0, 1.0])
    nq = torch.tensor([10.0, 10.0])
    logp = torch.tensor([-1.0, -1.0])
    alpha = torch.tensor(0.5)
    tgt = td_target(r, torch.tensor([0.0, 1.0]), nq, logp, alpha, 0.9, backup_entropy=True)
    assert tgt[0].item() == pytest.approx(1.0 + 0.9 * (10.0 + 0.5))
    assert tgt[1].item() == pytest.approx(1.0)
    tgt = td_target(r, torch.tensor([0.0, 1.0]), nq, logp, alpha, 0.9, backup_entropy=False)
    assert tgt[0].item() == pytest.approx(1.0 + 0.9 * 10.0)


def test_update_ignores_truncated_but_not_terminated():
    ones = torch.ones(32)
    results = {}
    for name, term, trunc in (("base", None, None), ("trunc", None, ones), ("term", ones, None)):
        agent = RLPDAgent(OBS, ACT, _cfg())
        agent.update(None, _batch(32, terminated=term, truncated=trunc))
        results[name] = _params(agent)
    assert torch.equal(results["base"], results["trunc"])  # time limit: still bootstraps
    assert not torch.equal(results["base"], results["term"])


def test_agent_target_for_terminated_is_reward():
    agent = RLPDAgent(OBS, ACT, _cfg())
    b = _batch(8)
    feat = b["next_obs"]["state"]
    tgt = agent.compute_target(feat, feat, b["reward"], torch.ones(8))
    assert torch.allclose(tgt, b["reward"])
    tgt = agent.compute_target(feat, feat, b["reward"], torch.zeros(8))
    assert not torch.allclose(tgt, b["reward"])


def test_ensemble_batched_equals_per_critic_loop():
    torch.manual_seed(0)
    ens = EnsembleCritic(7, (16, 12), num=5, layer_norm=True)
    with torch.no_grad():  # make LayerNorm affine non-trivial
        for p in ens.ln_biases:
            p.normal_()
    x = torch.randn(9, 7)
    q = ens(x)
    assert q.shape == (5, 9)
    for n in range(5):
        h = x
        for i in range(3):
            h = h @ ens.weights[i][n] + ens.biases[i][n, 0]
            if i < 2:
                h = F.layer_norm(h, (h.shape[-1],), None, ens.ln_biases[i][n, 0])
                h = torch.relu(h)
        assert torch.allclose(q[n], h.squeeze(-1), atol=1e-5), n


def test_subset_min_uses_only_chosen_members():
    agent = RLPDAgent(OBS, ACT, _cfg(num_critics=6, critic_subset=2))
    feat = torch.randn(10, 5)
    a = torch.rand(10, 3) * 2 - 1
    full = agent.critic.forward_with(agent.critic_target_params, torch.cat([feat, a], -1))
    idx = torch.tensor([4, 1])
    got = agent.target_q(feat, a, idx)
    assert torch.allclose(got, torch.minimum(full[4], full[1]))
    assert torch.allclose(agent.target_q(feat, a, None), full.min(0).values)
    seen = set()
    for _ in range(50):
        s = agent.sample_subset()
        assert s.numel() == 2 and len(set(s.tolist())) == 2 and 0 <= s.min() and s.max() < 6
        seen.update(s.tolist())
    assert seen == set(range(6))


def _set_log_std(agent, value):
    # head output = [mean | pre_log_std]; zero the weights, pick biases so log_std == value.
    head = agent.actor.head
    a = agent.actor.action_dim
    lo, hi = agent.actor.log_std_min, agent.actor.log_std_max
    pre = math.atanh(2 * (value - lo) / (hi - lo) - 1)
    with torch.no_grad():
        head.weight.zero_()
        head.bias[:a] = 0.0
        head.bias[a:] = pre


@pytest.mark.parametrize("log_std,direction", [(-4.5, +1), (0.0, -1)])
def test_temperature_moves_toward_target_entropy(log_std, direction):
    agent = RLPDAgent(OBS, ACT, _cfg())
    assert agent.target_entropy == -ACT.shape[0] / 2
    _set_log_std(agent, log_std)
    before = agent.log_alpha.item()
    m = agent._actor_step(torch.randn(64, 5))
    ent = m["entropy"].item()
    # low entropy (below -|A|/2) must raise alpha, high entropy must lower it
    assert (ent < agent.target_entropy) == (direction > 0)
    assert math.copysign(1, agent.log_alpha.item() - before) == direction


def test_actor_state_dict_round_trip_and_contents():
    a = RLPDAgent(OBS, ACT, _cfg(seed=1))
    b = RLPDAgent(OBS, ACT, _cfg(seed=2))
    a.update(None, _batch(32))
    obs = np.random.default_rng(0).standard_normal(5).astype(np.float32)
    assert not np.allclose(a.act(obs, deterministic=True), b.act(obs, deterministic=True))
    sd = a.actor_state_dict()
    assert set(sd) == {"encoder", "actor"}
    assert not any("critic" in k for k in sd["actor"])
    b.load_actor_state_dict(sd)
    assert np.allclose(a.act(obs, deterministic=True), b.act(obs, deterministic=True))
    with pytest.raises(ValueError, match="expected keys"):
        b.load_actor_state_dict({"actor": sd["actor"]})
    other = RLPDAgent(OBS, ACT, _cfg(hidden_dims=(8, 8)))
    with pytest.raises(ValueError, match="architecture"):
        other.load_actor_state_dict(sd)


def test_checkpoint_resume_gives_identical_updates():
    batches = [_batch(32, seed=s) for s in range(6)]
    a = RLPDAgent(OBS, ACT, _cfg(seed=3))
    for b in batches[:3]:
        a.update(None, b)
    ckpt = a.state_dict()
    ma = [a.update(None, b) for b in batches[3:]]
    act_a = a.act(np.zeros(5, np.float32))  # stochastic: uses the restored RNG too
    b_agent = RLPDAgent(OBS, ACT, _cfg(seed=99))
    b_agent.load_state_dict(ckpt)
    mb = [b_agent.update(None, b) for b in batches[3:]]
    act_b = b_agent.act(np.zeros(5, np.float32))
    assert ma == mb
    assert torch.equal(_params(a), _params(b_agent))
    assert all(torch.equal(x, y) for x, y in zip(a.critic_target_params, b_agent.critic_target_params))
    assert np.array_equal(act_a, act_b)
    assert b_agent.num_critic_updates == a.num_critic_updates == 12
    assert b_agent.num_actor_updates == 6
    with pytest.raises(ValueError, match="missing"):
        b_agent.load_state_dict({"actor": ckpt["actor"]})


def test_utd_and_demo_mixing_counts():
    agent = RLPDAgent(OBS, ACT, _cfg(utd_ratio=3, batch_size=16))
    m = agent.update(_batch(24, seed=1), _batch(24, seed=2))
    assert agent.num_critic_updates == 3 and agent.num_actor_updates == 1
    for k in ("critic_loss", "actor_loss", "temperature", "q_mean", "entropy"):
        assert math.isfinite(m[k])
    with pytest.raises(ValueError, match="multiple of batch_size"):
        agent.update(None, _batch(20))
    bad = _batch(16)
    bad["action"] = bad["action"][:, :2]
    with pytest.raises(ValueError, match="action"):
        agent.update(None, bad)
    bad = _batch(16)
    bad["obs"] = {"state": torch.zeros(16, 4)}
    with pytest.raises(ValueError, match="state"):
        agent.update(None, bad)


def test_config_validation():
    with pytest.raises(ValueError, match="critic_subset"):
        RLPDAgent(OBS, ACT, RLPDConfig(num_critics=2, critic_subset=3))
    with pytest.raises(ValueError, match="unknown keys"):
        RLPDConfig.from_dict({"num_critic": 3})
    cfg = RLPDConfig.from_dict({"num_critics": 3, "hidden_dims": [8, 8], "encoder": {"cnn_channels": 8}})
    assert cfg.hidden_dims == (8, 8) and cfg.encoder.cnn_channels == 8
    with pytest.raises(ValueError, match="finite bounds"):
        RLPDAgent(OBS, spaces.Box(-np.inf, np.inf, (2,), np.float32), RLPDConfig())


def test_export_module_deterministic_and_in_bounds():
    agent = RLPDAgent(OBS, ACT, _cfg())
    with torch.no_grad():  # push the mean far out so tanh saturates: still in bounds
        agent.actor.head.bias[:3] = torch.tensor([50.0, -50.0, 0.3])
    mod = agent.export_module()
    x = {"state": torch.randn(64, 5)}
    torch.manual_seed(1)
    y1 = mod(x)
    torch.manual_seed(2)
    y2 = mod(x)
    assert torch.equal(y1, y2)
    lo, hi = torch.as_tensor(ACT.low), torch.as_tensor(ACT.high)
    assert y1.shape == (64, 3) and bool((y1 >= lo).all()) and bool((y1 <= hi).all())
    assert np.allclose(mod({"state": x["state"][:1]})[0].numpy(), agent.act(x["state"][0].numpy(), deterministic=True), atol=1e-6)
    # torch.export proves there is no data-dependent Python control flow.
    ep = torch.export.export(mod, (x,))
    assert torch.allclose(ep.module()({"state": x["state"] * 2}), mod({"state": x["state"] * 2}))


def test_export_module_onnx_round_trip(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    cfg = _cfg(discrete_gripper=True, encoder=EncoderConfig(cnn_channels=8, image_feature_dim=32))
    agent = RLPDAgent(IMG_SPACE, spaces.Box(-1.0, 2.0, (4,), np.float32), cfg)
    mod = agent.export_module()
    x = _img_batch(3)["obs"]
    path = str(tmp_path / "policy.onnx")
    # kwargs: a trailing dict in `args` would be taken as keyword arguments.
    torch.onnx.export(mod, (), path, kwargs={"obs": x}, dynamo=True, verbose=False)
    sess = ort.InferenceSession(path)
    feed = {i.name: x[i.name.removeprefix("obs_")].numpy() for i in sess.get_inputs()}
    out = sess.run(None, feed)[0]
    assert np.abs(out - mod(x).numpy()).max() < 1e-5


# --------------------------------------------------------------------------- #
# images, frozen encoder, discrete gripper
# --------------------------------------------------------------------------- #
IMG_SPACE = spaces.Dict(
    {
        "wrist": spaces.Box(0, 255, (32, 32, 3), np.uint8),
        "state": spaces.Box(-np.inf, np.inf, (4,), np.float32),
        "tactile_left": spaces.Box(-np.inf, np.inf, (4, 4), np.float32),
    }
)
GRIP_ACT = spaces.Box(-1.0, 1.0, (4,), np.float32)


def _img_batch(n, seed=0):
    g = torch.Generator().manual_seed(seed)

    def obs():
        return {
            "wrist": torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8),
            "state": torch.randn(n, 4, generator=g),
            "tactile_left": torch.randn(n, 4, 4, generator=g),
        }

    act = torch.rand(n, 4, generator=g) * 2 - 1
    act[:, -1] = torch.tensor([-1.0, 0.0, 1.0]).repeat(n)[:n]
    return {"obs": obs(), "next_obs": obs(), "action": act, "reward": torch.randn(n, generator=g),
            "terminated": torch.zeros(n), "truncated": torch.zeros(n)}


def test_image_agent_frozen_trunk_and_discrete_gripper(precision):
    # bf16: the frozen trunk's precompute runs under autocast too; acting and export stay fp32
    cfg = _cfg(discrete_gripper=True, precision=precision,
               encoder=EncoderConfig(freeze_image_encoder=True, cnn_channels=8, image_feature_dim=32))
    agent = RLPDAgent(IMG_SPACE, GRIP_ACT, cfg)
    assert agent.target_entropy == -1.5  # 3 arm dims
    trunk = [p.clone() for p in agent.encoder.images["wrist"].trunk.parameters()]
    head = [p.clone() for p in agent.encoder.images["wrist"].head.parameters()]
    m = agent.update(None, _img_batch(32))
    assert "gripper_loss" in m and math.isfinite(m["gripper_loss"])
    assert all(torch.equal(a, b) for a, b in zip(trunk, agent.encoder.images["wrist"].trunk.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(head, agent.encoder.images["wrist"].head.parameters()))
    obs = {k: v[0].numpy() for k, v in _img_batch(1)["obs"].items()}
    for det in (True, False):
        a = agent.act(obs, deterministic=det)
        assert a.shape == (4,) and a[-1] in (-1.0, 0.0, 1.0)
    y = agent.export_module()({k: torch.as_tensor(v)[None] for k, v in obs.items()})
    assert torch.allclose(y[0], torch.as_tensor(agent.act(obs, deterministic=True)))
    assert set(agent.actor_state_dict()) == {"encoder", "actor", "gripper"}


def test_trainable_image_encoder_learns_and_has_target():
    agent = RLPDAgent(IMG_SPACE, GRIP_ACT, _cfg(utd_ratio=1, encoder=EncoderConfig(cnn_channels=8, image_feature_dim=32)))
    trunk = [p.clone() for p in agent.encoder.images["wrist"].trunk.parameters()]
    agent.update(None, _img_batch(16))
    assert not all(torch.equal(a, b) for a, b in zip(trunk, agent.encoder.images["wrist"].trunk.parameters()))
    assert agent.target_encoder is not agent.encoder


class _SquareDemos:
    """Demonstrations whose action is where a bright square sits in the image: only a trunk that
    learns to see it can clone them (the state is noise)."""

    def __init__(self, n=64, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.zeros(n, 32, 32, 3, dtype=torch.uint8)
        self.actions = torch.zeros(n, 4)
        for i in range(n):
            r, c = torch.randint(0, 24, (2,), generator=g).tolist()
            self.images[i, r:r + 8, c:c + 8] = 255
            self.actions[i, :2] = torch.tensor([r / 12 - 1, c / 12 - 1])
        self.state = torch.randn(n, 4, generator=g)
        self.tactile = torch.randn(n, 4, 4, generator=g)

    def sample(self, n):
        i = torch.randint(0, len(self.images), (n,))
        return {"obs": self.observations(i), "action": self.actions[i]}

    def observations(self, i=slice(None)):
        return {"wrist": self.images[i], "state": self.state[i], "tactile_left": self.tactile[i]}


def test_pretrained_trunk_clones_demos_then_stays_frozen():
    enc = EncoderConfig(freeze_image_encoder=True, augment=False, cache_image_features=True,
                        cnn_channels=8, image_feature_dim=32, pretrain_steps=150, pretrain_batch=32)
    agent = RLPDAgent(IMG_SPACE, GRIP_ACT, _cfg(encoder=enc, actor_lr=1e-3))
    demos = _SquareDemos()
    trunk = [p.clone() for p in agent.encoder.images["wrist"].trunk.parameters()]
    agent.update(None, _img_batch(32))  # fills the feature cache with the untrained trunk's features
    assert len(agent.encoder.feature_caches["wrist"]) > 0
    fit = agent.fit_to_demos(demos)  # the input normalisation, then the trunk's BC fit
    assert fit["steps"] == 150 and fit["bc_loss_last"] < 0.25 * fit["bc_loss_first"], fit
    after = list(agent.encoder.images["wrist"].trunk.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(trunk, after))
    assert not any(p.requires_grad for p in after)
    assert len(agent.encoder.feature_caches["wrist"]) == 0  # stale features are gone
    target = dict(agent.target_encoder.state_dict())
    assert all(torch.equal(v, target[k]) for k, v in agent.encoder.state_dict().items())
    # RL afterwards leaves the fitted trunk alone, and the actor acts on what it learnt
    frozen = [p.clone() for p in after]
    agent.update(None, _img_batch(32))
    assert all(torch.equal(a, b) for a, b in zip(frozen, agent.encoder.images["wrist"].trunk.parameters()))
    batch = demos.sample(16)
    acted = np.stack([agent.act({k: v[i].numpy() for k, v in batch["obs"].items()}, deterministic=True)
                      for i in range(16)])
    assert np.abs(acted[:, :2] - batch["action"][:, :2].numpy()).mean() < 0.25


def test_pretraining_needs_a_frozen_image_trunk():
    with pytest.raises(ValueError, match="pretrain_steps.*freeze_image_encoder"):
        EncoderConfig(pretrain_steps=10).validate()
    agent = RLPDAgent(OBS, ACT, _cfg())
    with pytest.raises(ValueError, match="needs image observations"):
        agent.pretrain_image_trunk(_SquareDemos(), steps=1)


def test_gripper_double_dqn_target_and_penalty():
    torch.manual_seed(0)
    g = GripperCritic(3, hidden=(8,), discount=0.5, grasp_penalty=-0.1)
    nf = torch.randn(4, 3)
    a_star = g.q(nf).argmax(-1)
    q_tgt = g.q_target(nf).gather(1, a_star[:, None]).squeeze(1)
    r = torch.zeros(4)
    idx = torch.tensor([0, 1, 2, 1])
    term = torch.tensor([0.0, 0.0, 0.0, 1.0])
    t = g.td_target(r, idx, term, nf)
    expect = torch.tensor([-0.1, 0.0, -0.1, 0.0]) + 0.5 * (1 - term) * q_tgt
    assert torch.allclose(t, expect)
    assert discretize_gripper(torch.tensor([-1.0, -0.6, -0.2, 0.0, 0.4, 0.7, 1.0])).tolist() == [0, 0, 1, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="grasp_penalty"):
        GripperCritic(3, grasp_penalty=0.5)


@pytest.mark.parametrize("bc_weight", [0.0, 2.0])
def test_bc_term_pulls_the_actor_toward_demo_actions(bc_weight):
    """With bc_weight > 0 the deterministic action on demo states approaches the demo action;
    without it nothing ties the actor to the demonstrations."""
    torch.manual_seed(0)
    agent = RLPDAgent(OBS, ACT, _cfg(bc_weight=bc_weight, utd_ratio=1))
    demo = _batch(8, seed=1)
    demo_action = torch.as_tensor((ACT.low + ACT.high) / 2 + 0.4 * (ACT.high - ACT.low) / 2)
    demo["action"] = demo_action.expand(8, -1).clone()
    demo["reward"] = torch.zeros(8)
    online = _batch(8, seed=2)
    online["reward"] = torch.zeros(8)

    def distance():
        acts = np.stack([agent.act(demo["obs"]["state"][i].numpy(), deterministic=True)
                         for i in range(8)])
        return float(np.abs(acts - demo_action.numpy()).mean())

    before = distance()
    for _ in range(300):
        metrics = agent.update(demo, online)
    after = distance()
    if bc_weight:
        assert metrics["bc_loss"] > 0 or after < 0.05
        assert after < 0.25 * before
    else:
        assert metrics["bc_loss"] == 0.0
        assert after > 0.25 * before


def test_relu_saving_output_has_relu_gradient():
    from robot_rl.learning.rlpd import ReluSavingOutput

    x = torch.tensor([-2.0, -0.0, 0.0, 0.5, 3.0], requires_grad=True)
    y = ReluSavingOutput.apply(x)
    y.backward(torch.arange(1.0, 6.0))
    x2 = x.detach().clone().requires_grad_(True)
    torch.relu(x2).backward(torch.arange(1.0, 6.0))
    assert torch.equal(y, torch.relu(x.detach()))
    assert torch.equal(x.grad, x2.grad)


def test_compiled_update_matches_eager():
    """agent.compile runs the same maths: same seed, same batches -> same losses and weights
    (to float tolerance: inductor fuses and reorders the pointwise work). Covers the paths a
    compiled update takes: trainable CNN + DrQ shifts + tactile + state encoders, target
    subset, demo half with BC, the discrete gripper critic."""
    cfg = dict(utd_ratio=2, batch_size=16, bc_weight=1.0, discrete_gripper=True,
               encoder=EncoderConfig(cnn_channels=8, image_feature_dim=32))
    eager = RLPDAgent(IMG_SPACE, GRIP_ACT, _cfg(**cfg))
    compiled = RLPDAgent(IMG_SPACE, GRIP_ACT, _cfg(compile=True, **cfg))
    for s in range(3):
        demo, online = _img_batch(16, seed=10 + s), _img_batch(16, seed=20 + s)
        me, mc = eager.update(demo, online), compiled.update(demo, online)
        for k in ("critic_loss", "actor_loss", "bc_loss", "q_mean", "entropy", "temperature", "gripper_loss"):
            assert mc[k] == pytest.approx(me[k], rel=1e-4, abs=1e-5), k
    assert torch.allclose(_params(eager), _params(compiled), atol=1e-5)
    enc = [p.detach() for p in eager.encoder.parameters()], [p.detach() for p in compiled.encoder.parameters()]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*enc))


def test_compile_without_a_cpp_compiler_is_refused(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    with pytest.raises(RuntimeError, match="agent.compile=false"):
        RLPDAgent(OBS, ACT, _cfg(compile=True))


@pytest.mark.parametrize("compile_losses", [False, True])
def test_bf16_precision_runs_reduced_matmuls_but_keeps_fp32_state_and_outputs(compile_losses):
    """agent.precision=bf16: the losses differ from fp32 (bf16 matmuls really ran) but stay
    close (Q head, log-probs and losses in fp32), and weights, optimizer state and targets
    stay fp32; eager and compiled. On a CPU without native bf16 the option is refused instead."""
    cfg = dict(utd_ratio=2, batch_size=16, bc_weight=1.0, discrete_gripper=True, compile=compile_losses,
               encoder=EncoderConfig(cnn_channels=8, image_feature_dim=32))
    if not has_native_bf16(torch.device("cpu")):
        with pytest.raises(ValueError, match="precision='bf16' needs"):
            RLPDAgent(IMG_SPACE, GRIP_ACT, _cfg(precision="bf16", **cfg))
        return
    fp32 = RLPDAgent(IMG_SPACE, GRIP_ACT, _cfg(**cfg))
    bf16 = RLPDAgent(IMG_SPACE, GRIP_ACT, _cfg(precision="bf16", **cfg))
    for s in range(3):
        demo, online = _img_batch(16, seed=10 + s), _img_batch(16, seed=20 + s)
        m32, m16 = fp32.update(demo, online), bf16.update(demo, online)
        for k in ("critic_loss", "actor_loss", "q_mean", "entropy"):
            assert m16[k] == pytest.approx(m32[k], rel=0.05, abs=0.02), k
    assert m16["critic_loss"] != m32["critic_loss"]
    tensors = [*bf16.critic.parameters(), *bf16.actor.parameters(), *bf16.encoder.parameters(), *bf16.critic_target_params,
               *(v for st in bf16.critic_opt.state.values() for v in st.values() if torch.is_tensor(v))]
    assert {t.dtype for t in tensors} == {torch.float32}
    feat = torch.randn(16, bf16.critic.dims[0])
    with bf16._precision():
        q = bf16.critic(feat)
        _, logp = bf16.actor.sample(feat[:, :bf16.encoder.out_dim], torch.randn(16, bf16.cont_dim))
    assert q.dtype == logp.dtype == torch.float32


def test_bf16_without_native_support_is_refused(monkeypatch):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    with pytest.raises(ValueError, match="AVX512-BF16 or AMX.*agent.precision: fp32"):
        RLPDAgent(OBS, ACT, _cfg(precision="bf16"))
    with pytest.raises(ValueError, match="'fp32' or 'bf16'"):
        RLPDAgent(OBS, ACT, _cfg(precision="fp16"))
