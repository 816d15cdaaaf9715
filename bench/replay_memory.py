"""Replay memory per transition: frame-sharing uint8 buffer vs naive float32.

Two 128x128x3 cameras + a 19-D proprio state + 7-D action. The naive buffer
stores obs and next_obs separately as float32 (what a generic SAC buffer
does). Also fills a small buffer with real episodes to confirm the measured
frames-per-transition ratio.

Usage: python bench/replay_memory.py [--capacity 100000] [--episode-len 100]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gymnasium import spaces  # noqa: E402

from robot_rl.learning.replay import ReplayBuffer  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capacity", type=int, default=100_000)
    p.add_argument("--episode-len", type=int, default=100)
    args = p.parse_args(argv)
    H = W = 128
    state_dim, act_dim = 19, 7
    sp = spaces.Dict(
        {
            "front": spaces.Box(0, 255, (H, W, 3), np.uint8),
            "wrist": spaces.Box(0, 255, (H, W, 3), np.uint8),
            "state": spaces.Box(-np.inf, np.inf, (state_dim,), np.float32),
        }
    )
    buf = ReplayBuffer(sp, act_dim, args.capacity, verbose=False)
    rep = buf.memory_report()
    per = rep["bytes_per_transition"]
    obs_f32 = (2 * H * W * 3 + state_dim) * 4
    naive = 2 * obs_f32 + (act_dim + 3) * 4  # obs + next_obs float32, action, reward, term, trunc
    obs_u8_both = 2 * (2 * H * W * 3 + state_dim * 4) + (act_dim + 3) * 4
    print(f"two {H}x{W}x3 cameras + {state_dim}-D state, {act_dim}-D action, capacity {args.capacity}")
    print(f"  ours (uint8, frames shared):        {per:10.0f} B/transition = {per / 1024:6.1f} KiB  -> {rep['total_bytes'] / 2**30:6.2f} GiB")
    print(f"  uint8, obs+next_obs both stored:    {obs_u8_both:10.0f} B/transition = {obs_u8_both / 1024:6.1f} KiB  -> {obs_u8_both * args.capacity / 2**30:6.2f} GiB")
    print(f"  naive float32 obs+next_obs:         {naive:10.0f} B/transition = {naive / 1024:6.1f} KiB  -> {naive * args.capacity / 2**30:6.2f} GiB")
    print(f"  reduction vs naive: {naive / per:.1f}x   (target <= 100 KB/transition: {'OK' if per <= 100_000 else 'MISSED'})")

    # Empirical check: frames actually written per transition with real episodes.
    small = ReplayBuffer(sp, act_dim, 2000, verbose=False)
    rng = np.random.default_rng(0)
    for ep in range(2000 // args.episode_len):
        obs = {k: rng.integers(0, 255, s.shape).astype(s.dtype) for k, s in sp.spaces.items()}
        for t in range(args.episode_len):
            nxt = {k: rng.integers(0, 255, s.shape).astype(s.dtype) for k, s in sp.spaces.items()}
            small.add(obs, np.zeros(act_dim, np.float32), 0.0, nxt, False, t == args.episode_len - 1)
            obs = nxt
    print(f"  measured: {small.n_frames} frames for {small.n_added} transitions "
          f"({small.n_frames / small.n_added:.3f} frames/transition with {args.episode_len}-step episodes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
