"""In-process PickCubeEnv speed: steps/s and real-time factor at the 10 Hz control rate.

    PYTHONPATH=. python bench/sim_speed.py [--steps 300] [--threads 1]

Variants: (a) state only, (b) state + tactile (the default), (c) two 128x128 cameras + tactile;
each driven by random actions and by the scripted expert. Then a profile of where an env step's
time goes: physics (mj_step), the impedance controller (pinocchio, every 2 ms physics step),
rendering, and observation assembly (snapshot + task). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from collections import defaultdict

import robot_rl  # noqa: F401  (MUJOCO_GL=egl before mujoco is imported)

import mujoco
import numpy as np

import robot_rl.envs.pick_cube as pick_cube_module
from robot_rl.config import load_config
from robot_rl.envs.expert import PickExpert
from robot_rl.envs.pick_cube import PickCubeEnv

REFERENCE = ("a widely used MuJoCo Panda pick-cube env: 111 steps/s state-only, 2.2 steps/s "
             "with two 128x128 cameras on a 2-core machine (reference figures, not measured here)")
REF_STATE, REF_CAMERAS = 111.0, 2.2

VARIANTS = {
    "a) state": {"task.observations": ["state"]},
    "b) state+tactile": {"task.observations": ["state", "tactile"]},
    "c) 2x128x128 cams+tactile": {
        "task.observations": ["state", "tactile", "images"],
        "cameras": [{"name": "front", "width": 128, "height": 128},
                    {"name": "wrist", "width": 128, "height": 128}]},
}


class Timers:
    """Wall time accumulated per label by wrapping callables."""

    def __init__(self):
        self.total = defaultdict(float)
        self.calls = defaultdict(int)

    def wrap(self, label, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[label] += time.perf_counter() - start
                self.calls[label] += 1
        return timed


def run(env, steps, policy, rng):
    """Run ``steps`` env steps (resetting on episode end); returns steps/s and successes."""
    expert = PickExpert(env.cfg.task.max_step_pos, env.cfg.task.lift_height)
    seed = 0
    env.reset(seed=seed)
    expert.reset()
    successes = episodes = 0
    start = time.perf_counter()
    for _ in range(steps):
        if policy == "expert":
            action = expert.act(env._snap, env.action_space.shape[0])
        else:
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            successes += terminated
            episodes += 1
            seed += 1
            env.reset(seed=seed)
            expert.reset()
    elapsed = time.perf_counter() - start
    return steps / elapsed, successes, episodes


def profile(env, steps, rng):
    """Break one env step into physics, controller, rendering and observation assembly."""
    timers = Timers()
    world = env.world
    ctl = world.controller
    original_snapshot = pick_cube_module.snapshot_from_world
    original_mj_step = mujoco.mj_step
    ctl.compute = timers.wrap("controller (pinocchio)", ctl.compute)
    world.render = timers.wrap("rendering", world.render)
    env.task.observe = timers.wrap("task.observe", env.task.observe)
    env.task.command = timers.wrap("task.command", env.task.command)
    world.step_physics = timers.wrap("step_physics (all)", world.step_physics)
    pick_cube_module.snapshot_from_world = timers.wrap("snapshot (all)", original_snapshot)
    mujoco.mj_step = timers.wrap("mj_step", original_mj_step)
    try:
        env.reset(seed=0)
        timers.total.clear()
        timers.calls.clear()
        start = time.perf_counter()
        for i in range(steps):
            env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            if (i + 1) % env.cfg.task.max_episode_steps == 0:
                env.reset(seed=i)
        wall = time.perf_counter() - start
    finally:
        pick_cube_module.snapshot_from_world = original_snapshot
        mujoco.mj_step = original_mj_step
        for name in ("compute",):
            ctl.__dict__.pop(name, None)
        for obj, names in ((world, ("render", "step_physics")),
                           (env.task, ("observe", "command"))):
            for name in names:
                obj.__dict__.pop(name, None)
    t = timers.total
    rows = [
        ("physics (mj_step)", t["mj_step"]),
        ("controller (pinocchio)", t["controller (pinocchio)"]),
        ("step loop overhead", t["step_physics (all)"] - t["mj_step"]
         - t["controller (pinocchio)"]),
        ("rendering", t["rendering"]),
        ("obs assembly: snapshot w/o render", t["snapshot (all)"] - t["rendering"]),
        ("obs assembly: task.observe", t["task.observe"]),
        ("action: task.command", t["task.command"]),
    ]
    rows.append(("other (env.step glue, resets)", wall - sum(v for _, v in rows)))
    return wall, steps, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="env steps per measurement")
    parser.add_argument("--camera-steps", type=int, default=150,
                        help="env steps per measurement with cameras")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"robot_rl sim speed | {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, MuJoCo {mujoco.__version__}, "
          f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}")
    cfg0 = load_config(None, VARIANTS["a) state"])
    substeps = round(1 / cfg0.control_rate_hz / cfg0.sim.physics_dt)
    print(f"control {cfg0.control_rate_hz:g} Hz, physics dt {cfg0.sim.physics_dt * 1e3:g} ms "
          f"-> {substeps} physics steps (each with a controller update) per env step\n")
    print(f"{'variant':28s} {'policy':7s} {'steps/s':>9s} {'x real time':>12s} "
          f"{'vs reference':>13s} {'success':>8s}")
    envs = {}
    for name, overrides in VARIANTS.items():
        build = time.perf_counter()
        env = PickCubeEnv(load_config(None, overrides))
        env.reset(seed=0)      # first reset/render creates the EGL context
        if "images" in env.cfg.task.observations:
            env.step(np.zeros(env.action_space.shape, np.float32))
        build = time.perf_counter() - build
        envs[name] = env
        steps = args.camera_steps if "images" in env.cfg.task.observations else args.steps
        for policy in ("random", "expert"):
            rate, successes, episodes = run(env, steps, policy, rng)
            ref = REF_CAMERAS if "cams" in name else REF_STATE
            succ = f"{successes}/{episodes}" if policy == "expert" else ""
            print(f"{name:28s} {policy:7s} {rate:9.1f} {rate / cfg0.control_rate_hz:11.1f}x "
                  f"{rate / ref:12.1f}x {succ:>8s}")
        print(f"{'':28s} (env construction + first reset: {build:.2f} s)")
    print(f"\nreference: {REFERENCE}")
    print("'vs reference' = measured steps/s / reference steps/s (state-only reference for a/b, "
          "camera reference for c)\n")

    for name in ("b) state+tactile", "c) 2x128x128 cams+tactile"):
        env = envs[name]
        steps = args.camera_steps if "cams" in name else args.steps
        wall, n, rows = profile(env, steps, rng)
        print(f"profile {name}, random actions: {n / wall:.1f} steps/s, "
              f"{wall / n * 1e3:.2f} ms per env step")
        for label, seconds in rows:
            print(f"  {label:34s} {seconds / n * 1e3:8.3f} ms/step {100 * seconds / wall:6.1f} %")
        print()

    # Micro-benchmarks of the per-physics-step pieces, outside the env.
    world = envs["b) state+tactile"].world
    world.reset(seed=0)
    q, dq = world.arm_q(), world.data.qvel[world._arm_dof].copy()
    n = 5000
    start = time.perf_counter()
    for _ in range(n):
        world.controller.compute(q, dq)
    ctl_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n):
        world.kin.state(q, dq)
    state_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n):
        mujoco.mj_step(world.model, world.data)
    step_us = (time.perf_counter() - start) / n * 1e6
    print(f"per physics step: mj_step {step_us:.1f} us, controller.compute {ctl_us:.1f} us "
          f"(of which kin.state {state_us:.1f} us)")
    for env in envs.values():
        env.close()


if __name__ == "__main__":
    main()
