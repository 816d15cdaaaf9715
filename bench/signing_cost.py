"""Cost of signed learning traffic: encode/decode time of transition batches and actor weights
with and without Ed25519 signatures (robot_rl/security.py), and the weight probe.

    PYTHONPATH=. python bench/signing_cost.py [--repeat 200]

Prints the best time of --repeat runs per message and the ratio signed / unsigned for: a 1-step state batch (the
actor's default send_every), a 1-step batch with two 128x128 images, the demo's actor weights
(state observations, 256x256 MLP), and the actor's probe of received weights.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, repeat: int) -> float:
    """Best of ``repeat``: the cost of the work itself. (Under load the median also holds the
    scheduler's delays: hashlib releases the GIL on large buffers and the thread waits for a
    core again; at load 20 on 2 cores that added ~10 ms.)"""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    import torch

    from robot_rl import security, transport
    from robot_rl.config import load_config
    from robot_rl.learning.rlpd import RLPDAgent
    from robot_rl.learning.weight_check import WeightProbe
    from robot_rl.deploy.agent_export import task_spaces

    torch.set_num_threads(1)
    keys = Path(tempfile.mkdtemp()) / "keys"
    security.init_keystore(keys, actors=1)
    ring = security.Keyring.load(keys)
    actor, learner = security.Signer.load(keys, "actor_0"), security.Signer.load(keys, "learner")
    rows = []
    for label, obs in (("state", ["state", "object", "tactile"]),
                       ("images", ["state", "images", "tactile"])):
        cfg = load_config(None, {"task.observations": obs})
        obs_space, act_space, _ = task_spaces(cfg)
        spec = transport.obs_spec_of(obs_space)
        sample = obs_space.sample()
        steps = [transport.StepRecord(action=np.zeros(4, np.float32), reward=0.0,
                                      next_obs=sample, terminated=False, truncated=False,
                                      obs=sample)]
        for name, signer, ring_ in (("unsigned", None, None), ("signed", actor, ring)):
            data = transport.encode_transitions(steps, 0, 0, 0, spec, signer=signer)
            enc = timed(lambda: transport.encode_transitions(steps, 0, 0, 0, spec, signer=signer),
                        args.repeat)
            dec = timed(lambda: transport.decode_transitions(data, spec, 4, keyring=ring_),
                        args.repeat)
            rows.append((f"transitions 1 step ({label}, {len(data) / 1024:.0f} KiB)", name, enc,
                         dec))
        if label == "state":
            agent = RLPDAgent(obs_space, act_space, cfg.agent)
            sd = agent.actor_state_dict()
            for name, signer, ring_ in (("unsigned", None, None), ("signed", learner, ring)):
                data = transport.encode_weights(sd, 1, 0, "L", "R", signer=signer)
                enc = timed(lambda: transport.encode_weights(sd, 1, 0, "L", "R", signer=signer),
                            max(20, args.repeat // 10))
                dec = timed(lambda: transport.decode_weights(data, sd, keyring=ring_),
                            max(20, args.repeat // 10))
                rows.append((f"actor weights ({len(data) / 1024:.0f} KiB)", name, enc, dec))
            probe = WeightProbe(agent)
            probe_s = timed(lambda: probe.check(sd), max(20, args.repeat // 10))
    print("| message | frame | encode ms | decode ms |\n|---|---|---|---|")
    for what, name, enc, dec in rows:
        print(f"| {what} | {name} | {1e3 * enc:.3f} | {1e3 * dec:.3f} |")
    for i in range(0, len(rows), 2):
        (what, _, e0, d0), (_, _, e1, d1) = rows[i], rows[i + 1]
        print(f"{what}: signed/unsigned encode x{e1 / e0:.2f}, decode x{d1 / d0:.2f}, "
              f"+{1e3 * (e1 - e0 + d1 - d0):.3f} ms per message end to end")
    print(f"weight probe (16 observations, before applying weights): {1e3 * probe_s:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
