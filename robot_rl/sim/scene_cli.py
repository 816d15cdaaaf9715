"""``robot-rl sim-scene``: write what every simulator builds from the scene description.

    robot-rl sim-scene --config config/gazebo.yaml --out runs/scene [--backend all]

mujoco: ``mujoco_world.xml`` (the world MJCF; the robot is attached at build time);
gazebo: ``world.sdf``, ``robot.urdf`` (ros2_control + sensors), ``bridge.yaml``;
isaac: ``isaac_scene.json`` (what sim/isaac/app.py and the Isaac Lab scene are built from).
launch/gazebo.launch.py and sim/isaac/app.py generate the same files themselves; this command is
for looking at them, or for loading them into a simulator by hand.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

BACKENDS = ("mujoco", "gazebo", "isaac")


def write_scene_files(cfg, out: Path, backends=BACKENDS) -> list[Path]:
    from robot_rl.paths import shared_file
    from robot_rl.sim.scene_description import scene_description
    desc = scene_description(cfg)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "mujoco" in backends:
        from robot_rl.sim.scene import world_mjcf
        path = out / "mujoco_world.xml"
        path.write_text(world_mjcf(desc))
        written.append(path)
    if "gazebo" in backends:
        from robot_rl.sim.gazebo import write_gazebo_files
        files = write_gazebo_files(cfg, out, shared_file("config", "ros2_controllers_panda.yaml"))
        written += [files.world, files.robot, files.bridge]
    if "isaac" in backends:
        from robot_rl.sim.isaac.scene_spec import isaac_scene_spec
        path = out / "isaac_scene.json"
        path.write_text(json.dumps(isaac_scene_spec(cfg, desc), indent=2) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    from robot_rl.config import load_config
    from robot_rl.cli import parse_sets
    parser = argparse.ArgumentParser(prog="robot-rl sim-scene", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="", help="robot_rl YAML (default: built-in defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--backend", choices=("all",) + BACKENDS, default="all")
    parser.add_argument("--out", required=True, help="folder to write the files into")
    args = parser.parse_args(argv)
    cfg = load_config(args.config or None, parse_sets(args.set))
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    for path in write_scene_files(cfg, Path(args.out), backends):
        print(path)
    return 0
