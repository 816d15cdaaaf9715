"""RLPD from demonstrations on a stock Gymnasium env, with no robot anywhere.

    python docs/examples/gym_with_demos.py [--steps 3000]

MountainCarContinuous-v0: the car must rock back and forth to climb the hill; reaching the
flag terminates the episode with +100. A hand-written policy (push in the direction of motion)
records 10 demonstrations in memory; the agent trains from them and the env, is evaluated every
500 steps, and the best evaluation's actor weights are kept.
"""
import argparse

import gymnasium as gym
import numpy as np

from robot_rl.learning.demos import record_episodes
from robot_rl.learning.rlpd import RLPDConfig
from robot_rl.learning.train_gym import TrainGymConfig, train


def push_with_the_motion(obs):
    return np.array([1.0 if obs[1] >= 0 else -1.0], dtype=np.float32)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    demos = record_episodes(gym.make("MountainCarContinuous-v0"), push_with_the_motion, episodes=10,
                            seed=args.seed)
    print(f"{len(demos.episode_lengths)} demonstrations, mean {np.mean(demos.episode_lengths):.0f} steps")

    config = TrainGymConfig(
        agent=RLPDConfig(num_critics=2, utd_ratio=2, batch_size=128, hidden_dims=(128, 128),
                         bc_weight=2.0, seed=args.seed),
        eval_every=500, eval_episodes=5, seed=args.seed, verbose=False)

    def report(progress):
        if progress["event"] == "eval":
            print(f"step {progress['step']}: success {progress['success_rate']:.0%}, "
                  f"steps to success {progress['mean_steps_to_success']}")

    result = train("MountainCarContinuous-v0", config, args.steps, demos=demos, callback=report)
    best = result["best"]
    print(f"best evaluation: {best['success_rate']:.0%} at step {best['step']} "
          f"(demonstrations: {np.mean(demos.episode_lengths):.0f} steps)")
    return result


if __name__ == "__main__":
    main()
