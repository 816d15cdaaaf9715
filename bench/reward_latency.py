"""How late the classifier's success reaches the actor's env, over DDS, against the stand-in.

    PYTHONPATH=. MUJOCO_GL=egl python bench/reward_latency.py [--steps 60] [--runs 3]

Trains a reward classifier on frames the MuJoCo stand-in renders (12 episodes, 64x64 front
camera), starts the stand-in (lockstep) and the reward node as processes, and drives a
``RosRobotEnv`` (``hil.reward.source: classifier``) with zero actions. For every step it
records when the step's observation arrived and when the first ``/task/success`` message after
the step's command reached the env (the classifier's answer to that step's frame). Prints per
run the median and 95th percentile of answer time minus observation time (negative: the
answer was there first, and that step's success counts at once), the share of steps where it
was, the p95 in 10 Hz control periods (a real robot runs in real time: under 1.0 means the
answer is there before the next step), and, stepping the lockstep stand-in flat out, how many
further steps pass before a frame's answer is counted, without and with ``hil.reward.wait_s``
(and the time per step with it). Plus the 1-minute load average: the
figures depend on it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 50))

import numpy as np  # noqa: E402

CAMERA = {"name": "front", "width": 64, "height": 64, "fps": 10}


def measure(env, steps: int) -> list[float]:
    """Per step: seconds from the step's observation to the first success message sent
    after its command (the answer to its frame); negative when it came first."""
    source = env.reward_source
    arrivals: list[float] = []
    original = source.on_message

    def timed(value):
        arrivals.append(time.monotonic())
        original(value)

    source.on_message = timed  # the env's subscription looks it up per message
    delays = []
    try:
        env.reset()
        for _ in range(steps):
            seen = len(arrivals)
            env.step(np.zeros(4, np.float32))
            observed = time.monotonic()
            deadline = observed + 2.0
            while len(arrivals) <= seen and time.monotonic() < deadline:
                time.sleep(0.0005)  # the lockstep stand-in waits for our next command
            if len(arrivals) > seen:  # negative: there before the observation was
                delays.append(arrivals[seen] - observed)
    finally:
        del source.on_message
    return delays


def lockstep_lag(env, steps: int) -> list[int]:
    """Stepping flat out: how many steps pass before each frame's answer is counted."""
    source = env.reward_source
    lags = []
    env.reset()
    for _ in range(steps):
        before = source.messages
        n = 0
        env.step(np.zeros(4, np.float32))
        while source.messages == before and n < 20:
            env.step(np.zeros(4, np.float32))
            n += 1
        lags.append(n)
    return lags


def config_overrides(cfg) -> dict:
    return {"task.observations": list(cfg.task.observations), "cameras": [CAMERA],
            "tactile": [], "task.max_episode_steps": cfg.task.max_episode_steps,
            "hil.reward.source": "classifier", "hil.reward.model": cfg.hil.reward.model}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wait-s", type=float, default=0.2,
                        help="hil.reward.wait_s of the second env, whose lockstep lag is also "
                             "measured")
    args = parser.parse_args(argv)

    import rclpy

    from robot_rl.config import load_config, save_config
    from robot_rl.envs.ros_env import RosRobotEnv
    from robot_rl.graph import NodeSpec, graph
    from robot_rl.hil.reward_classifier import collect_sim_frames, train
    from robot_rl.launcher import NodeGraph

    tmp = Path(tempfile.mkdtemp(prefix="reward_latency_"))
    base = {"task.observations": ["state"], "cameras": [CAMERA], "tactile": [],
            "task.max_episode_steps": 1000}
    frames = collect_sim_frames(12, camera="front", size=64, seed=0,
                                cfg=load_config(None, base))
    train(frames, steps=300, log=None).save(tmp / "model")
    cfg = load_config(None, {**base, "hil.reward.source": "classifier",
                             "hil.reward.model": str(tmp / "model")})
    path = tmp / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path)) + [NodeSpec(
        "reward", "reward", "robot_rl.ros.reward_node", {"config_file": str(path)})],
        log_dir=tmp / "logs").start()
    rclpy.init()
    env = None
    try:
        env = RosRobotEnv(cfg, node_name="reward_latency", timeout=20.0, startup_timeout=90.0)
        deadline = time.monotonic() + 90.0
        while env.reward_source.messages == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if env.reward_source.messages == 0:
            print("no /task/success from the reward node within 90 s", file=sys.stderr)
            return 1
        period = 1.0 / cfg.control_rate_hz
        waiting = RosRobotEnv(load_config(None, {**config_overrides(cfg), "hil.reward.wait_s":
                                                 args.wait_s}),
                              node_name="reward_latency_wait", timeout=20.0)
        for run in range(args.runs):
            delays = measure(env, args.steps)
            t0 = time.monotonic()
            lags = lockstep_lag(env, args.steps)
            plain_step = (time.monotonic() - t0) / sum(n + 1 for n in lags)
            med, p95 = statistics.median(delays), float(np.percentile(delays, 95))
            ready = sum(d <= 0 for d in delays) / max(1, len(delays))
            print(f"run {run + 1}: load {os.getloadavg()[0]:.2f}; classifier answer vs the "
                  f"step's observation at the env: median {1000 * med:+.1f} ms, p95 "
                  f"{1000 * p95:+.1f} ms ({ready:.0%} there before it; {len(delays)}/"
                  f"{args.steps} answered) = {p95 / period:+.2f} control periods "
                  f"({1000 * period:.0f} ms) at p95; lockstep flat out: counted after median "
                  f"{statistics.median(lags):.0f}, max {max(lags)} further steps, "
                  f"{1000 * plain_step:.1f} ms per step", flush=True)
            t0 = time.monotonic()
            lags = lockstep_lag(waiting, args.steps)
            per_step = (time.monotonic() - t0) / sum(n + 1 for n in lags)
            print(f"run {run + 1}: with hil.reward.wait_s {args.wait_s}: counted after max "
                  f"{max(lags)} further steps; {1000 * per_step:.1f} ms per lockstep step "
                  f"({per_step / plain_step:.2f} x without waiting)", flush=True)
        waiting.close()
    finally:
        if env is not None:
            env.close()
        rclpy.try_shutdown()
        nodes.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
