"""Isaac Sim (5.x) standing in for the arm behind robot_rl's contract: a standalone app.

    ~/isaacsim/python.sh sim/isaac/app.py --config config/isaac.yaml [--headless]

It builds the stage from :func:`robot_rl.sim.isaac.scene_spec.isaac_scene_spec` (the scene
description MuJoCo and Gazebo are generated from too) and speaks the same topics as a real arm
under ros2_control, so robot_rl's joint driver (``driver.adapter: ros2_control``) and the rest of
the graph run unchanged beside it (``robot-rl up --config config/isaac.yaml``):

* ``driver.hardware_state_topic`` (sensor_msgs/JointState) every physics step, and the arm's
  joint efforts from ``driver.effort_command_topic`` / finger positions from
  ``driver.gripper_command_topic`` (std_msgs/Float64MultiArray), applied every physics step;
* ``/clock`` and the cameras (image_raw + camera_info) through the Isaac Sim ROS 2 bridge's
  OmniGraph nodes;
* the tactile images from the fingertip contact sensors' raw contacts, binned on the pads of the
  scene description (robot_rl/sim/contact_taxels.py);
* the object pose under /sim/ for scoring;
* scene reset through the ROS 2 simulation interfaces (extension isaacsim.ros2.sim_control:
  ``/set_entity_state``), which robot_rl's ``isaac_adapter`` node calls when the reset node awaits
  the human.

Written against the Isaac Sim 5.0 documentation; it has not run on this project's machines (no
RTX GPU): docs/simulators.md lists what was verified.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

ISAAC_HINT = ("run it with Isaac Sim's Python (~/isaacsim/python.sh sim/isaac/app.py) "
              "or `pip install isaacsim[all]==5.*` in a Python 3.11 environment on a machine "
              "with an RTX GPU (docs/simulators.md)")


def start_simulation_app(headless: bool):
    try:
        from isaacsim import SimulationApp
    except ImportError as exc:
        raise ImportError(f"Isaac Sim is not importable here ({exc}): {ISAAC_HINT}") from None
    return SimulationApp({"headless": headless})


def _enable_extensions() -> None:
    from isaacsim.core.utils.extensions import enable_extension
    for ext in ("isaacsim.ros2.bridge", "isaacsim.ros2.sim_control",
                "isaacsim.asset.importer.urdf", "isaacsim.sensors.physics"):
        enable_extension(ext)


def _build_stage(spec: dict):
    """World, ground, table, object and the imported robot; returns (world, robot, cube)."""
    import omni.kit.commands
    from isaacsim.core.api import World
    from isaacsim.core.api.materials import PhysicsMaterial
    from isaacsim.core.api.objects import DynamicCuboid, FixedCuboid
    from isaacsim.core.prims import SingleArticulation

    world = World(physics_dt=spec["physics_dt"], rendering_dt=1.0 / spec["control_rate_hz"],
                  stage_units_in_meters=1.0)
    world.scene.add_default_ground_plane(z_position=spec["ground_z"])
    objects = {}
    for key, cls in (("table", FixedCuboid), ("object", DynamicCuboid)):
        b = spec[key]
        material = PhysicsMaterial(prim_path=f"{b['prim_path']}_material",
                                   static_friction=b["static_friction"],
                                   dynamic_friction=b["dynamic_friction"])
        extra = {"mass": b["mass"]} if b["mass"] is not None else {}
        objects[key] = world.scene.add(cls(
            prim_path=b["prim_path"], name=key, position=np.array(b["position"]),
            scale=np.array(b["size"]), size=1.0, color=np.array(b["color"]),
            physics_material=material, **extra))
    robot = spec["robot"]
    _, config = omni.kit.commands.execute("URDFCreateImportConfig")
    config.fix_base = True
    config.merge_fixed_joints = False  # the TCP, hand and pad frames stay prims
    config.import_inertia_tensor = True
    _, prim = omni.kit.commands.execute("URDFParseAndImportFile", urdf_path=robot["urdf"],
                                        import_config=config, get_articulation_root=True)
    arm = world.scene.add(SingleArticulation(prim_path=prim, name="robot",
                                             position=np.array(robot["base_position"])))
    return world, arm, objects["object"]


def _camera_graph(spec: dict) -> None:
    """OmniGraph: /clock and every published camera's image_raw + camera_info via the bridge."""
    import omni.graph.core as og
    from isaacsim.sensors.camera import Camera

    nodes = [("Tick", "omni.graph.action.OnPlaybackTick"),
             ("SimTime", "isaacsim.core.nodes.IsaacReadSimulationTime"),
             ("Clock", "isaacsim.ros2.bridge.ROS2PublishClock")]
    connect = [("Tick.outputs:tick", "Clock.inputs:execIn"),
               ("SimTime.outputs:simulationTime", "Clock.inputs:timeStamp")]
    values = [("Clock.inputs:topicName", spec["ros"]["clock"])]
    for cam in spec["cameras"]:
        camera = Camera(prim_path=cam["prim_path"], frequency=cam["frequency_hz"],
                        resolution=tuple(cam["resolution"]))
        camera.initialize()
        camera.set_local_pose(translation=np.array(cam["translation"]),
                              orientation=np.array(cam["orientation_usd"]), camera_axes="usd")
        camera.set_focal_length(cam["focal_length"])
        camera.set_horizontal_aperture(cam["horizontal_aperture"])
        camera.set_vertical_aperture(cam["vertical_aperture"])
        if not cam["published"]:
            continue
        name = cam["name"]
        nodes += [(f"Image_{name}", "isaacsim.ros2.bridge.ROS2CameraHelper"),
                  (f"Info_{name}", "isaacsim.ros2.bridge.ROS2CameraInfoHelper")]
        connect += [("Tick.outputs:tick", f"Image_{name}.inputs:execIn"),
                    ("Tick.outputs:tick", f"Info_{name}.inputs:execIn")]
        product = camera.get_render_product_path()
        values += [(f"Image_{name}.inputs:renderProductPath", product),
                   (f"Image_{name}.inputs:topicName", cam["image_topic"]),
                   (f"Image_{name}.inputs:frameId", cam["frame_id"]),
                   (f"Image_{name}.inputs:type", "rgb"),
                   (f"Info_{name}.inputs:renderProductPath", product),
                   (f"Info_{name}.inputs:topicName", cam["camera_info_topic"]),
                   (f"Info_{name}.inputs:frameId", cam["frame_id"])]
    og.Controller.edit({"graph_path": "/World/robot_rl_graph", "evaluator_name": "execution"},
                       {og.Controller.Keys.CREATE_NODES: nodes, og.Controller.Keys.CONNECT: connect,
                        og.Controller.Keys.SET_VALUES: values})


def _contact_sensors(spec: dict) -> dict:
    from isaacsim.sensors.physics import ContactSensor
    sensors = {}
    for pad in spec["tactile"]:
        sensor = ContactSensor(prim_path=pad["prim_path"], name=f"tactile_{pad['name']}",
                               frequency=int(1.0 / spec["physics_dt"]), translation=pad["translation"],
                               min_threshold=0.0, max_threshold=1e6, radius=-1)
        sensor.add_raw_contact_data_to_frame()
        sensors[pad["name"]] = sensor
    return sensors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim/isaac/app.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="", help="robot_rl YAML (default config/isaac.yaml)")
    parser.add_argument("--headless", action="store_true")
    args = parser.parse_args(argv)
    # Everything robot_rl derives from the configuration before the (slow) app starts, so a bad
    # configuration fails in a second with robot_rl's own error.
    from robot_rl.config import load_config
    from robot_rl.paths import shared_file
    from robot_rl.sim.isaac.scene_spec import isaac_scene_spec
    from robot_rl.sim.scene_description import quat_to_matrix, scene_description
    config_file = args.config or str(shared_file("config", "isaac.yaml"))
    cfg = load_config(config_file)
    desc = scene_description(cfg)
    spec = isaac_scene_spec(cfg, desc)

    app = start_simulation_app(args.headless)
    try:
        _enable_extensions()
        world, robot, cube = _build_stage(spec)
        _camera_graph(spec)
        sensors = _contact_sensors(spec)
        world.reset()
        from isaacsim.core.prims import SingleRigidPrim

        from robot_rl.ros.isaac_io import IsaacRosIO
        links = {pad["link"]: SingleRigidPrim(pad["link_prim"]) for pad in spec["tactile"]}

        def link_pose(link):
            pos, quat = links[link].get_world_pose()
            return np.asarray(pos), quat_to_matrix(quat)

        io = IsaacRosIO(cfg, spec, desc, robot, cube, sensors, link_pose,
                        now=lambda: world.current_time)
        world.add_physics_callback("robot_rl", io.on_physics_step)
        world.play()
        while app.is_running():
            world.step(render=True)
            io.publish_frame(io.sim_time)
        io.close()
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
