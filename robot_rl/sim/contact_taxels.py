"""Contact points and forces -> a taxel image, for simulators that report contacts rather than
taxels (Gazebo's contact sensor, Isaac Sim's contact sensor / contact report).

The grid is the scene description's :class:`~robot_rl.sim.scene_description.TactilePad`, the
same one MuJoCo's touch sensors are laid out on, and the value is what a MuJoCo touch sensor
reads: the sum of the normal-force magnitudes of the contacts inside the taxel. ROS-free.
"""
from __future__ import annotations

import numpy as np

from robot_rl.sim.scene_description import TactilePad


def to_link_frame(points_world: np.ndarray, link_pos: np.ndarray,
                  link_rot: np.ndarray) -> np.ndarray:
    """World points (N, 3) in the frame of a link at ``link_pos`` with rotation ``link_rot``
    (world <- link)."""
    return (np.asarray(points_world, dtype=float) - link_pos) @ np.asarray(link_rot)


#: Contacts this close outside the pad still count: box-on-box contact points lie on the pad's
#: edges, a hair outside in floating point (MuJoCo's touch sensors count them too).
EDGE_TOLERANCE = 5e-4  # m


def taxel_image(pad: TactilePad, points_link: np.ndarray, forces_link: np.ndarray,
                tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """(rows, cols) float32 newtons: each contact's force component along the pad normal (the
    link's y axis), summed per taxel; contacts off the pad are ignored."""
    points = np.asarray(points_link, dtype=float).reshape(-1, 3)
    forces = np.asarray(forces_link, dtype=float).reshape(-1, 3)
    if points.shape != forces.shape:
        raise ValueError(f"{len(points)} contact points but {len(forces)} forces: expected one "
                         f"force (3 components) per point")
    image = np.zeros((pad.rows, pad.cols), np.float32)
    for point, force in zip(points, forces):
        cell = pad.taxel_at(point, tolerance)
        if cell is not None:
            image[cell] += abs(force[1])
    return image


class LinkPoser:
    """World pose of a robot link from joint positions (pinocchio forward kinematics of the
    robot's URDF, mounted at ``base``): where a contact-reporting simulator's world-frame
    contact points are on the pad."""

    def __init__(self, urdf: str, base=(0.0, 0.0, 0.0)):
        import pinocchio as pin

        from robot_rl.robot.description import resolve_urdf
        self._pin = pin
        self.model = pin.buildModelFromUrdf(str(resolve_urdf(urdf)))
        self.data = self.model.createData()
        self.base = np.asarray(base, dtype=float)

    def pose(self, link: str, joints: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(position, rotation world <- link); joints missing from ``joints`` are at 0."""
        pin, model = self._pin, self.model
        if not model.existFrame(link):
            raise KeyError(f"link {link!r} is not in the robot's URDF")
        q = pin.neutral(model)
        for name, value in joints.items():
            if model.existJointName(name):
                joint = model.joints[model.getJointId(name)]
                if joint.nq == 1:
                    q[joint.idx_q] = value
        pin.framesForwardKinematics(model, self.data, q)
        placement = self.data.oMf[model.getFrameId(link)]
        return placement.translation + self.base, placement.rotation.copy()


def batched_taxel_image(pad: TactilePad, points_link, forces_link, valid=None,
                        tolerance: float = EDGE_TOLERANCE):
    """:func:`taxel_image` for a batch of environments in torch (Isaac Lab's GPU tensors):
    points and forces (N, M, 3) in the pad link's frame, ``valid`` (N, M) marks real contacts
    (a fixed-size contact buffer pads with garbage). Returns (N, rows, cols)."""
    import torch
    p = points_link - torch.as_tensor(pad.centre, dtype=points_link.dtype, device=points_link.device)
    hx, hy, hz = pad.half
    on_pad = ((p[..., 0].abs() <= hx + tolerance) & (p[..., 1].abs() <= hy + tolerance)
              & (p[..., 2].abs() <= hz + tolerance))
    if valid is not None:
        on_pad &= valid
    col = torch.clamp(torch.floor((p[..., 0] + hx) / (2 * hx) * pad.cols), 0, pad.cols - 1).long()
    row = torch.clamp(torch.floor((hz - p[..., 2]) / (2 * hz) * pad.rows), 0, pad.rows - 1).long()
    n = points_link.shape[0]
    cell = row * pad.cols + col + torch.arange(n, device=p.device).unsqueeze(-1) * pad.rows * pad.cols
    force = torch.where(on_pad, forces_link[..., 1].abs(), torch.zeros_like(forces_link[..., 1]))
    image = torch.zeros(n * pad.rows * pad.cols, dtype=force.dtype, device=p.device)
    image.index_add_(0, cell.reshape(-1), force.reshape(-1))
    return image.reshape(n, pad.rows, pad.cols)
