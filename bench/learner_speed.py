"""Learner speed benchmark.

(a) our agent at Stable-Baselines3's SAC config (2 critics, 256x256, batch
    256, UTD 1) vs SB3 SAC, same process, same data dims, same threads.
    Both include replay sampling. Ratio = ours / SB3.
(b) RLPD default (N=10 critics, M=2 target subset, UTD critic updates per
    actor update): critic updates/s, matmul FLOPs counted from the network
    shapes, and the share of this machine's measured fp32 torch.mm throughput.
Eager (the default), with ``agent.compile=true`` (torch.compile of the critic and actor
losses; compiled once before timing) and, where the hardware multiplies bf16 natively, with
``agent.precision=bf16`` as well (bf16 autocast; SB3 stays fp32). The reference throughput is
the best of the measured fp32 torch.mm shapes (the largest is the machine's peak on a GPU,
where small matmuls are launch-bound); the bf16 torch.mm rate is printed beside it, so a bf16
update can be read against both. ``--device cuda`` runs everything, SB3 included, on the GPU
with TF32 off (fp32 means fp32).

Usage: python bench/learner_speed.py [--seconds 8] [--rounds 4] [--obs-dim 17] [--act-dim 6] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402

from robot_rl.learning.replay import ReplayBuffer  # noqa: E402
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig, has_native_bf16  # noqa: E402

FILL = 20_000


class _DummyEnv(gym.Env):
    def __init__(self, obs_dim: int, act_dim: int):
        self.observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = spaces.Box(-1, 1, (act_dim,), np.float32)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample() * 0, {}

    def step(self, a):
        return np.zeros(self.observation_space.shape, np.float32), 0.0, False, False, {}


def _data(obs_dim: int, act_dim: int, n: int):
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((n + 1, obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
    rew = rng.standard_normal(n).astype(np.float32)
    return obs, act, rew


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, seconds: float, warmup: int = 5, device: str = "cpu") -> float:
    """Calls/s of fn over ~seconds (after warmup); queued GPU work is waited for at both ends."""
    for _ in range(warmup):
        fn()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    _sync(device)
    return n / (time.perf_counter() - t0)


def our_agent(obs_dim: int, act_dim: int, cfg: RLPDConfig):
    env = _DummyEnv(obs_dim, act_dim)
    buf = ReplayBuffer(env.observation_space, act_dim, FILL, verbose=False, seed=0)
    obs, act, rew = _data(obs_dim, act_dim, FILL)
    for i in range(FILL):
        buf.add(obs[i], act[i], rew[i], obs[i + 1], False, i % 1000 == 999)
    agent = RLPDAgent(env.observation_space, env.action_space, cfg)
    n = cfg.utd_ratio * cfg.batch_size
    return lambda: agent.update(None, buf.sample(n))


def sb3_sac(obs_dim: int, act_dim: int, batch: int, device: str = "cpu"):
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    env = _DummyEnv(obs_dim, act_dim)
    model = SAC("MlpPolicy", env, batch_size=batch, buffer_size=FILL, learning_starts=0, device=device, seed=0, verbose=0)
    model.set_logger(Logger(folder=None, output_formats=[]))
    obs, act, rew = _data(obs_dim, act_dim, FILL)
    for i in range(FILL):
        model.replay_buffer.add(obs[i : i + 1], obs[i + 1 : i + 2], act[i : i + 1], rew[i : i + 1], np.zeros(1), [{}])
    return lambda: model.train(gradient_steps=1, batch_size=batch)


def mm_throughput(sizes, seconds: float = 1.0, device: str = "cpu", dtype=torch.float32) -> dict:
    """GFLOP/s of torch.mm for (m, k, n) shapes."""
    out = {}
    for m, k, n in sizes:
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        c = torch.empty(m, n, device=device, dtype=dtype)
        rate = _timed(lambda: torch.mm(a, b, out=c), seconds, device=device)
        out[(m, k, n)] = rate * 2 * m * k * n / 1e9
    return out


def rlpd_flops(obs_dim: int, act_dim: int, cfg: RLPDConfig) -> float:
    """Matmul FLOPs of one ``update`` call (U critic steps + 1 actor step).

    Per critic step: target actor fwd (F_a) + M target critics fwd + N critics
    fwd + N critics bwd (weight grads + input grads except layer 0 whose input
    needs no grad). Actor step: actor fwd + N critics fwd (detached weights)
    + N critics input-grad bwd + actor bwd (weights + inputs except layer 0).
    """
    B, U, N, M = cfg.batch_size, cfg.utd_ratio, cfg.num_critics, cfg.critic_subset
    cd = [obs_dim + act_dim, *cfg.hidden_dims, 1]
    ad = [obs_dim, *cfg.hidden_dims, 2 * act_dim]
    fc = sum(2 * B * cd[i] * cd[i + 1] for i in range(len(cd) - 1))
    fa = sum(2 * B * ad[i] * ad[i + 1] for i in range(len(ad) - 1))
    c0 = 2 * B * cd[0] * cd[1]
    a0 = 2 * B * ad[0] * ad[1]
    critic_step = fa + M * fc + N * fc + N * (2 * fc - c0)
    actor_step = fa + N * fc + N * fc + (2 * fa - a0)
    return U * critic_step + actor_step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0, help="timing window per measurement")
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch default)")
    p.add_argument("--skip-sb3", action="store_true")
    p.add_argument("--rounds", type=int, default=4, help="interleaved timing windows")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (the agent, SB3 and the matmul reference)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    where = f"threads={torch.get_num_threads()}, cpu cores={os.cpu_count()}"
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            p.error(f"--device {dev}: this torch ({torch.__version__}) sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        where = f"device={torch.cuda.get_device_name(torch.device(dev))}, TF32 off"
    print(f"torch {torch.__version__}, {where}, obs_dim={args.obs_dim}, act_dim={args.act_dim}")

    def config(**kw) -> RLPDConfig:
        return RLPDConfig(device=dev, **kw)

    bf16 = has_native_bf16(torch.device(dev))
    if not bf16:
        print(f"no agent.precision=bf16 variants: {dev} has no native bf16 matmul")

    # (a) SB3 config -------------------------------------------------------
    # The machine may be shared: interleave short windows of every contender
    # and report the best window of each (least disturbed) and the median.
    sb3_arch = dict(num_critics=2, critic_subset=2, utd_ratio=1, batch_size=256, hidden_dims=(256, 256))
    no_ln = dict(critic_layer_norm=False, actor_layer_norm=False)
    contenders = {
        "ours, LayerNorm critic (our default)": our_agent(args.obs_dim, args.act_dim, config(**sb3_arch)),
        "ours, LayerNorm, agent.compile=true": our_agent(args.obs_dim, args.act_dim, config(compile=True, **sb3_arch)),
        "ours, no LayerNorm (SB3's exact architecture)": our_agent(
            args.obs_dim, args.act_dim, config(**no_ln, **sb3_arch)),
        "ours, no LayerNorm, agent.compile=true": our_agent(
            args.obs_dim, args.act_dim, config(compile=True, **no_ln, **sb3_arch)),
    }
    if bf16:
        contenders["ours, LayerNorm, compile + precision=bf16"] = our_agent(
            args.obs_dim, args.act_dim, config(compile=True, precision="bf16", **sb3_arch))
        contenders["ours, no LayerNorm, compile + precision=bf16"] = our_agent(
            args.obs_dim, args.act_dim, config(compile=True, precision="bf16", **no_ln, **sb3_arch))
    if not args.skip_sb3:
        try:
            contenders["SB3 SAC (gradient_steps=1)"] = sb3_sac(args.obs_dim, args.act_dim, 256, dev)
        except ImportError as e:
            print(f"(a) stable-baselines3 not importable ({e}); skipping the comparison")
    rates = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for k, fn in contenders.items():
            rates[k].append(_timed(fn, args.seconds / args.rounds, warmup=2, device=dev))
    print(f"(a) gradient updates/s at SB3's config (2 critics, 256x256, batch 256, UTD 1), {args.rounds} interleaved windows:")
    for k, r in rates.items():
        print(f"(a)   {k:48s} best {max(r):7.1f}   median {float(np.median(r)):7.1f}")
    sb3_key = "SB3 SAC (gradient_steps=1)"
    if sb3_key in rates:
        for k in [k for k in rates if k != sb3_key]:
            print(f"(a) ratio [{k}] / SB3: best {max(rates[k]) / max(rates[sb3_key]):.2f}x, "
                  f"median {np.median(rates[k]) / np.median(rates[sb3_key]):.2f}x  (target >= 1.5x)")

    # (b) RLPD default -----------------------------------------------------
    variants = {"eager (default)": config(), "agent.compile=true": config(compile=True)}  # N=10, M=2, UTD=8
    if bf16:
        variants["compile + precision=bf16"] = config(compile=True, precision="bf16")
    cfg = variants["eager (default)"]
    fns = {k: our_agent(args.obs_dim, args.act_dim, c) for k, c in variants.items()}
    mm_sizes = [(cfg.batch_size, cfg.hidden_dims[0], cfg.hidden_dims[0]),
                (cfg.batch_size * cfg.num_critics, cfg.hidden_dims[0], cfg.hidden_dims[0]), (1024, 1024, 1024)]
    if dev.startswith("cuda"):
        mm_sizes.append((8192, 8192, 8192))
    call_r, mm_r, mm_bf16 = {k: [] for k in fns}, [], []
    for _ in range(args.rounds):  # interleave with the matmul reference (shared-machine noise)
        for k, fn in fns.items():
            call_r[k].append(_timed(fn, args.seconds / args.rounds, warmup=1, device=dev))
        mm_r.append(mm_throughput(mm_sizes, seconds=0.5, device=dev))
        if bf16:
            mm_bf16.append(mm_throughput(mm_sizes, seconds=0.5, device=dev, dtype=torch.bfloat16))
    flops = rlpd_flops(args.obs_dim, args.act_dim, cfg)
    B = cfg.batch_size
    mm = {k: max(m[k] for m in mm_r) for k in mm_r[0]}
    ref_shape = max(mm, key=mm.get)  # the machine's measured peak among the shapes
    ref = mm[ref_shape]
    ref_name = "x".join(map(str, ref_shape))
    print(f"(b) RLPD default N={cfg.num_critics} M={cfg.critic_subset} UTD={cfg.utd_ratio} batch={B}; "
          f"matmul FLOPs per update() call: {flops / 1e9:.3f} GFLOP")
    for (m, k, n), g in mm.items():
        print(f"(b) measured torch.mm fp32 {m}x{k} @ {k}x{n}: {g:.1f} GFLOP/s")
    bf16_peak = max(max(m.values()) for m in mm_bf16) if mm_bf16 else None
    if bf16_peak:
        print(f"(b) measured torch.mm bf16, best of the same shapes: {bf16_peak:.1f} GFLOP/s")
    for name, rates in call_r.items():
        calls = max(rates)
        achieved = calls * flops / 1e9
        med = float(np.median(rates)) * flops / 1e9 / float(np.median([m[ref_shape] for m in mm_r]))
        print(f"(b) {name:20s} {calls * cfg.utd_ratio:6.1f} critic updates/s ({calls:.2f} update() calls/s = actor "
              f"updates/s), {achieved:.1f} GFLOP/s = {100 * achieved / ref:.1f}% of the {ref_name} mm "
              f"(median windows {100 * med:.1f}%)  (target >= 60%)"
              + (f"; {100 * achieved / bf16_peak:.1f}% of the bf16 mm" if "bf16" in name else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
