"""Where a simulator's reset puts the object: a random pose on the table within
``sim.object_*_range``, as the MuJoCo stand-in draws it (robot_rl/sim/world.py). ROS-free; the
Gazebo and Isaac Sim adapters send it through their simulator's set-pose service."""
from __future__ import annotations

import numpy as np

from robot_rl.config import Config
from robot_rl.sim.scene_description import SceneDescription


def random_object_pose(rng: np.random.Generator, cfg: Config,
                       desc: SceneDescription) -> tuple[np.ndarray, np.ndarray]:
    """(position, quaternion w, x, y, z): resting on the table top, yawed about z."""
    sim = cfg.sim
    x, y = rng.uniform(*sim.object_x_range), rng.uniform(*sim.object_y_range)
    yaw = rng.uniform(*sim.object_yaw_range)
    z = desc.table_top_z + desc.object.half_size[2]
    return np.array([x, y, z]), np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
