"""The Isaac Sim scene of the scene description, as plain data (JSON-serialisable).

robot_rl/sim/isaac/app.py builds the stage from this spec and robot_rl/sim/isaac/lab_env.py its
Isaac Lab scene; both need Isaac Sim, this module does not, so the spec is tested here against
the compiled MuJoCo model (tests/test_isaac.py). Conventions: metres, quaternions (w, x, y, z).
A camera's ``orientation_usd`` uses USD's camera axes (looking along -z, +y up: MuJoCo's, and
Isaac Sim's ``camera_axes="usd"``), ``orientation_ros`` the ROS optical frame
(``camera_axes="ros"``). USD's pinhole is focal length and apertures in the same unit:
``fx = width * focal_length / horizontal_aperture``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_rl import topics
from robot_rl.config import Config
from robot_rl.sim.scene_description import (SceneDescription, matrix_to_quat, refuse_fixtures,
                                            scene_description)

WORLD_PRIM = "/World"
ROBOT_PRIM = "/World/panda"
#: Focal length the apertures are derived from (any value gives the same intrinsics).
FOCAL_LENGTH = 24.0
#: simulation_interfaces service of Isaac Sim's isaacsim.ros2.sim_control extension.
SET_ENTITY_STATE = "/set_entity_state"


def link_prim(link: str) -> str:
    """Prim of a robot link: Isaac Sim's URDF importer keeps link names under the robot root."""
    return f"{ROBOT_PRIM}/{link}"


def _list(values) -> list[float]:
    return [float(v) for v in values]


def isaac_scene_spec(cfg: Config, desc: SceneDescription | None = None) -> dict:
    desc = desc or scene_description(cfg)
    refuse_fixtures(desc, "Isaac Sim")
    from robot_rl.robot.description import resolve_urdf
    fps = {c.name: c.fps for c in cfg.cameras if c.backend == "sim"}

    def box(b, prim):
        return {"prim_path": prim, "position": _list(b.pos), "size": _list(b.size),
                "color": _list(b.rgba[:3]), "static_friction": float(b.friction[0]),
                "dynamic_friction": float(b.friction[0]),
                "mass": None if b.mass is None else float(b.mass)}

    cameras = []
    for cam in desc.cameras:
        fx, fy, cx, cy = cam.intrinsics()
        parent = WORLD_PRIM if cam.parent == "world" else link_prim(cam.parent)
        cameras.append({
            "name": cam.name, "prim_path": f"{parent}/camera_{cam.name}", "parent_prim": parent,
            "translation": _list(cam.pos),
            "orientation_usd": _list(matrix_to_quat(cam.rotation())),
            "orientation_ros": _list(matrix_to_quat(cam.optical_rotation())),
            "resolution": [cam.width, cam.height],
            "focal_length": FOCAL_LENGTH,
            "horizontal_aperture": FOCAL_LENGTH * cam.width / fx,
            "vertical_aperture": FOCAL_LENGTH * cam.height / fy,
            "principal_point": [cx, cy],
            "frequency_hz": float(fps.get(cam.name, cfg.control_rate_hz)),
            "published": cam.name in fps,
            "image_topic": topics.camera_image_topic(cam.name),
            "camera_info_topic": topics.camera_info_topic(cam.name),
            "frame_id": f"{cam.name}_optical_frame",
        })
    pads = [{"name": p.name, "link": p.link, "link_prim": link_prim(p.link),
             "prim_path": f"{link_prim(p.link)}/tactile_{p.name}",
             "translation": _list(p.centre), "half_size": _list(p.half),
             "rows": p.rows, "cols": p.cols, "topic": topics.tactile_topic(p.name)}
            for p in desc.pads]
    return {
        "scene": desc.name,
        "physics_dt": float(desc.physics_dt),
        "control_rate_hz": float(cfg.control_rate_hz),
        "gravity": _list(desc.gravity),
        "ground_z": float(desc.floor_z),
        "robot": {
            "urdf": str(Path(resolve_urdf(cfg.robot.urdf)).resolve()),
            "prim_path": ROBOT_PRIM,
            "base_position": _list(desc.robot_base),
            "arm_joints": list(cfg.robot.arm_joints),
            "gripper_joints": list(cfg.robot.gripper_joints),
            "home": _list(cfg.robot.home),
            "gripper_open": float(cfg.robot.gripper_max_width / len(cfg.robot.gripper_joints)),
        },
        "table": box(desc.table, f"{WORLD_PRIM}/{desc.table.name}"),
        "object": box(desc.object, f"{WORLD_PRIM}/{desc.object.name}"),
        "cameras": cameras,
        "tactile": pads,
        "ros": {
            "clock": topics.CLOCK,
            "joint_states": cfg.driver.hardware_state_topic,
            "effort_commands": cfg.driver.effort_command_topic,
            "gripper_commands": cfg.driver.gripper_command_topic,
            "object_pose": topics.OBJECT_POSE,
            "set_entity_state": SET_ENTITY_STATE,
        },
    }


def camera_intrinsics(camera: dict) -> tuple[float, float, float, float]:
    """fx, fy, cx, cy of a spec camera, as Isaac Sim derives them from the USD lens."""
    width, height = camera["resolution"]
    fx = width * camera["focal_length"] / camera["horizontal_aperture"]
    fy = height * camera["focal_length"] / camera["vertical_aperture"]
    cx, cy = camera["principal_point"]
    return float(fx), float(fy), float(cx), float(cy)


def rotation(quat_wxyz) -> np.ndarray:
    from robot_rl.sim.scene_description import quat_to_matrix
    return quat_to_matrix(quat_wxyz)
