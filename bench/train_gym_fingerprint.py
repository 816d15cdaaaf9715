"""Fingerprint of seeded ``train-gym`` runs, to check that a refactor of the training loop keeps
its behaviour: run it on two trees and compare the printed JSON (identical = same episodes,
evaluations, update count and final actor weights, bit for bit).

    PYTHONPATH=/path/to/old/tree python bench/train_gym_fingerprint.py > old.json
    PYTHONPATH=$PWD              python bench/train_gym_fingerprint.py > new.json
    cmp old.json new.json

Pendulum-v1, 600 env steps, 100 random warm-up steps, an evaluation every 200 steps; once with
the single-env loop and once with a SyncVectorEnv of 2 (the subprocess vector env is not
deterministic in timing, and its loop is the same code). About a minute per tree on 2 cores.
"""
from __future__ import annotations

import argparse
import hashlib
import json

import torch

from robot_rl.learning.rlpd import RLPDConfig
from robot_rl.learning.train_gym import TrainGymConfig, train

SMALL = RLPDConfig(num_critics=2, critic_subset=2, utd_ratio=2, hidden_dims=(32, 32), batch_size=32, seed=0)
LOOPS = {"single": {}, "sync2": {"num_envs": 2, "vector_env": "sync"}}


def fingerprint(steps: int, **loop) -> dict:
    torch.manual_seed(0)
    cfg = TrainGymConfig(agent=SMALL, learning_starts=100, eval_every=200, eval_episodes=1, verbose=False,
                         **loop)
    res = train("Pendulum-v1", cfg, steps)
    digest = hashlib.sha256()
    for _, tensor in sorted(res["agent"].actor_state_dict()["actor"].items()):
        digest.update(tensor.numpy().tobytes())
    return {"returns": [round(r, 6) for r in res["episode_returns"]],
            "updates": res["agent"].num_actor_updates,
            "evaluations": [round(e["return_mean"], 6) for e in res["evaluations"]],
            "kept_step": res["kept_step"], "actor_sha256": digest.hexdigest()[:16]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    print(json.dumps({name: fingerprint(args.steps, **loop) for name, loop in LOOPS.items()}, indent=1))


if __name__ == "__main__":
    main()
