"""The workspace box, checked for every command path: TCP targets and joint targets.

A Cartesian target is clamped into the box. A joint target is checked along the straight
joint-space path from the measured joints to the target (the path the joint-mode controller
follows: its reference limiting keeps the error direction), with pinocchio forward kinematics
at points no more than ``max_joint_step`` apart. The first point whose TCP lies outside the box
ends the accepted part of the path: the target is scaled back to the last point before it
(``CLAMPED``), or refused when no part of the path is admissible (``REJECTED``). A path that
starts outside the box (after a reset, or a box made smaller) may not go further out than it
already is: the allowed excursion ratchets down to the smallest one reached so far.

Status contract: the joint driver publishes one ``std_msgs/String`` on ``/robot/status`` per
changed or refused command::

    CLAMPED: <command>: <detail>     the command was changed and applied
    REJECTED: <command>: <detail>    the command was refused; the previous target is held

``<command>`` is ``ee_target``, ``joint_target`` or ``gripper_target``. A box violation names
the face as ``<axis> < <limit> (workspace_min.<axis>)`` or ``<axis> > <limit>
(workspace_max.<axis>)``, and for joint targets the joints whose motion drives the TCP through
that face, e.g.::

    CLAMPED: joint_target: TCP would leave the workspace box at z < 0.01 (workspace_min.z),
    driven by panda_joint2, panda_joint4; target scaled back to 38% of the way: [...]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

AXES = "xyz"
# Joint targets are checked against the box shrunk by this much on every side: the arm tracks a
# joint-space path only approximately (bench/workspace_box.py measures up to ~5 mm outside the
# path's own TCP line in closed loop), and the admitted target sits right at a face.
JOINT_PATH_MARGIN = 0.005  # m
# Joint-space spacing of the checked path points. With it the TCP moves at most a few cm
# between points, and between two inside points the path cannot bulge out by more than
# ~1 mm (bench/workspace_box.py measures the worst case against a 16x denser path).
MAX_JOINT_STEP = 0.01  # rad


@dataclass(frozen=True)
class Face:
    """One face of the box that a point lies beyond."""
    axis: int            # 0, 1, 2 for x, y, z
    side: str            # "min" or "max"
    limit: float         # the face's coordinate, m
    excursion: float     # how far beyond it, m

    def describe(self) -> str:
        name = AXES[self.axis]
        sign = "<" if self.side == "min" else ">"
        return f"{name} {sign} {self.limit:g} (workspace_{self.side}.{name})"


class WorkspaceBox:
    def __init__(self, lower, upper):
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        if self.lower.shape != (3,) or self.upper.shape != (3,) or np.any(self.lower >= self.upper):
            raise ValueError(f"workspace box needs lower < upper on x, y, z; got "
                             f"{self.lower.tolist()}..{self.upper.tolist()}")

    def excursion(self, point: np.ndarray) -> float:
        """Euclidean distance from ``point`` to the box, m (0 inside or on it)."""
        below = np.maximum(self.lower - point, 0.0)
        above = np.maximum(point - self.upper, 0.0)
        out = below + above
        return math.sqrt(float(out @ out))

    def faces(self, point: np.ndarray) -> list[Face]:
        """The faces ``point`` lies beyond, farthest first."""
        found = []
        for axis in range(3):
            if point[axis] < self.lower[axis]:
                found.append(Face(axis, "min", float(self.lower[axis]),
                                  float(self.lower[axis] - point[axis])))
            elif point[axis] > self.upper[axis]:
                found.append(Face(axis, "max", float(self.upper[axis]),
                                  float(point[axis] - self.upper[axis])))
        return sorted(found, key=lambda f: -f.excursion)

    def clamp(self, point: np.ndarray) -> tuple[np.ndarray, list[Face]]:
        return np.clip(point, self.lower, self.upper), self.faces(point)

    def describe(self) -> str:
        return f"{np.round(self.lower, 4).tolist()}..{np.round(self.upper, 4).tolist()}"

    def shrunk(self, margin: float) -> "WorkspaceBox":
        """The box moved ``margin`` inward on every side (kept non-empty)."""
        margin = min(margin, float(np.min(self.upper - self.lower)) / 4)
        return WorkspaceBox(self.lower + margin, self.upper - margin)


@dataclass
class PathCheck:
    """Outcome of checking a joint target's path against the box."""
    target: np.ndarray                 # the admissible target (the request, or scaled back)
    fraction: float                    # share of the requested motion kept, 0..1
    face: Face | None = None           # the face the path would have crossed
    driving_joints: list[str] = field(default_factory=list)
    tcp: np.ndarray | None = None      # TCP position at ``target``

    @property
    def changed(self) -> bool:
        return self.face is not None

    @property
    def refused(self) -> bool:
        return self.face is not None and self.fraction <= 0.0


def path_points(q_start: np.ndarray, q_target: np.ndarray,
                max_joint_step: float = MAX_JOINT_STEP) -> np.ndarray:
    """Points of the straight joint-space path, start and target included, ≤ step apart."""
    delta = q_target - q_start
    steps = max(1, math.ceil(float(np.max(np.abs(delta))) / max_joint_step))
    return q_start + np.linspace(0.0, 1.0, steps + 1)[:, None] * delta


def check_joint_path(kinematics, box: WorkspaceBox, q_start, q_target,
                     max_joint_step: float = MAX_JOINT_STEP, margin: float = 0.0) -> PathCheck:
    """Scale ``q_target`` back along its path so that the TCP stays in ``box`` shrunk by
    ``margin`` (see module doc); the face reported is the configured one."""
    q_start = np.asarray(q_start, dtype=float)
    q_target = np.asarray(q_target, dtype=float)
    outer, box = box, (box.shrunk(margin) if margin > 0 else box)
    points = path_points(q_start, q_target, max_joint_step)
    allowed = box.excursion(kinematics.forward(q_start).translation)
    last_tcp = kinematics.forward(q_start).translation.copy()
    for k in range(1, len(points)):
        tcp = kinematics.forward(points[k]).translation
        out = box.excursion(tcp)
        if out > allowed + 1e-9:
            keep = (k - 1) / (len(points) - 1)
            face = box.faces(tcp)[0]
            limits = outer.lower if face.side == "min" else outer.upper
            face = Face(face.axis, face.side, float(limits[face.axis]), face.excursion)
            return PathCheck(target=points[k - 1].copy(), fraction=keep, face=face,
                             driving_joints=_driving_joints(kinematics, points[k - 1],
                                                            q_target - q_start, face),
                             tcp=last_tcp)
        allowed = min(allowed, out)
        last_tcp = tcp.copy()
    return PathCheck(target=q_target.copy(), fraction=1.0, tcp=last_tcp)


def _driving_joints(kinematics, q: np.ndarray, delta: np.ndarray, face: Face) -> list[str]:
    """Joints whose share of the motion pushes the TCP through ``face``, largest first."""
    _, jac, _ = kinematics.state(q, np.zeros_like(q))
    outward = 1.0 if face.side == "max" else -1.0
    push = outward * jac[face.axis] * delta
    total = float(np.sum(push[push > 0]))
    if total <= 0:
        return []
    order = np.argsort(-push)
    return [kinematics.joint_names[i] for i in order if push[i] >= 0.1 * total]
