"""The pick scene, described once for every simulator: table, object, cameras, tactile pads and
the robot's URDF.

MuJoCo (robot_rl/sim/scene.py), the Gazebo SDF world (robot_rl/sim/gazebo/) and the Isaac Sim
scene spec (robot_rl/sim/isaac/) are all generated from a :class:`SceneDescription`, so the three
cannot drift apart. ROS-free and simulator-free (numpy only): every generator and its tests
import it without MuJoCo, Gazebo or Isaac Sim.

Conventions: SI units, positions in the world frame whose origin is the robot base on the table
top (z up), quaternions (w, x, y, z). A camera's orientation is MuJoCo's: it looks along its
-z axis with +y up in the image; :meth:`CameraSpec.optical_rotation` gives the ROS optical frame
(z forward, x right, y down) that every simulator's camera_info must agree with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_rl.config import Config

#: Scenes that have a description (the others are MuJoCo-only MJCF files in sim/).
DESCRIBED_SCENES = ("pick_cube",)


@dataclass(frozen=True)
class BoxBody:
    """A box: static when ``mass`` is None, else a free rigid body resting at ``pos``."""
    name: str
    half_size: tuple[float, float, float]
    pos: tuple[float, float, float]
    rgba: tuple[float, float, float, float]
    friction: tuple[float, float, float]    # sliding, torsional, rolling (MuJoCo's triple)
    mass: float | None = None
    # Orientation (w, x, y, z) of a fixture's part in the fixture's frame; None: axis-aligned.
    quat: tuple[float, float, float, float] | None = None

    @property
    def size(self) -> np.ndarray:
        return 2 * np.asarray(self.half_size, dtype=float)

    @property
    def inertia_diagonal(self) -> np.ndarray:
        """Principal moments of a solid box of ``mass`` (kg m^2)."""
        if self.mass is None:
            raise ValueError(f"{self.name} is static: it has no inertia")
        x, y, z = self.size
        return self.mass / 12.0 * np.array([y * y + z * z, x * x + z * z, x * x + y * y])


@dataclass(frozen=True)
class Fixture:
    """A static body built from boxes that a task adds to the scene (a hole block, a jig, a
    target plate) and may move between episodes (``Task.place_scene``): a MuJoCo mocap body,
    immovable by contact. ``parts``: static :class:`BoxBody` boxes, ``pos`` relative to the
    fixture's origin; ``pos``: the fixture's origin until it is placed."""
    name: str
    pos: tuple[float, float, float]
    parts: tuple[BoxBody, ...]

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError(f"fixture {self.name!r} has no parts; expected at least one BoxBody")
        moving = [p.name for p in self.parts if p.mass is not None]
        if moving:
            raise ValueError(f"fixture {self.name!r}: parts {moving} have a mass; fixture parts "
                             f"are static (mass None)")


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera mounted on ``parent`` ("world" or a robot link). Exactly one of
    ``quat`` (w, x, y, z) and ``xyaxes`` (the camera's right and up vectors in the parent frame,
    MuJoCo's ``xyaxes``) gives its orientation; ``fovy_deg`` its vertical field of view;
    ``width`` × ``height`` the rendered stream (square pixels)."""
    name: str
    parent: str
    pos: tuple[float, float, float]
    fovy_deg: float
    width: int
    height: int
    quat: tuple[float, float, float, float] | None = None
    xyaxes: tuple[float, float, float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if (self.quat is None) == (self.xyaxes is None):
            raise ValueError(f"camera {self.name!r}: give exactly one of quat (w, x, y, z) and "
                             f"xyaxes (right and up vectors), got quat={self.quat} "
                             f"xyaxes={self.xyaxes}")
        if not 0 < self.fovy_deg < 180:
            raise ValueError(f"camera {self.name!r}: fovy_deg must be in (0, 180), got "
                             f"{self.fovy_deg}")

    def rotation(self) -> np.ndarray:
        """3×3 rotation parent <- camera (MuJoCo camera axes: x right, y up, looking along -z),
        computed as MuJoCo's compiler does (normalise x, orthogonalise y, z = x × y)."""
        if self.quat is not None:
            return quat_to_matrix(self.quat)
        x = np.asarray(self.xyaxes[:3], dtype=float)
        y = np.asarray(self.xyaxes[3:], dtype=float)
        x = x / np.linalg.norm(x)
        y = y - x * (x @ y)
        y = y / np.linalg.norm(y)
        return np.column_stack([x, y, np.cross(x, y)])

    def optical_rotation(self) -> np.ndarray:
        """Parent <- ROS optical frame (x right, y down, z forward)."""
        return self.rotation() @ np.diag([1.0, -1.0, -1.0])

    @property
    def fovx_rad(self) -> float:
        """Horizontal field of view for square pixels (what Gazebo's ``horizontal_fov`` is)."""
        return float(2 * np.arctan(np.tan(np.deg2rad(self.fovy_deg) / 2) * self.width / self.height))

    def intrinsics(self) -> tuple[float, float, float, float]:
        """fx, fy, cx, cy in pixels: square pixels, principal point at the image centre with
        pixel centres at integers (robot_rl.sim.world.SimWorld.camera_intrinsics)."""
        f = 0.5 * self.height / np.tan(np.deg2rad(self.fovy_deg) / 2)
        return float(f), float(f), (self.width - 1) / 2, (self.height - 1) / 2


@dataclass(frozen=True)
class TactilePad:
    """A taxel grid on a fingertip pad: a box of half sizes ``half`` centred at ``centre`` in
    ``link``'s frame; x across the pad (``cols``), y its normal, z along the finger (``rows``,
    row 0 at the tip, i.e. the largest z)."""
    name: str
    link: str
    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    rows: int
    cols: int

    def taxel_half_size(self) -> np.ndarray:
        return np.array([self.half[0] / self.cols, self.half[1], self.half[2] / self.rows])

    def taxel_centres(self) -> np.ndarray:
        """(rows, cols, 3) taxel centres in the link frame."""
        cx, _, cz = self.centre
        hx, _, hz = self.half
        centres = np.zeros((self.rows, self.cols, 3))
        for r in range(self.rows):
            for c in range(self.cols):
                centres[r, c] = [cx - hx + (c + 0.5) * 2 * hx / self.cols, 0.0,
                                 cz + hz - (r + 0.5) * 2 * hz / self.rows]
        return centres

    def taxel_at(self, point_in_link: np.ndarray, tolerance: float = 0.0) -> tuple[int, int] | None:
        """(row, col) of the taxel under a point on the pad (link frame), None when the point is
        off the pad's face by more than ``tolerance`` m."""
        p = np.asarray(point_in_link, dtype=float) - np.asarray(self.centre, dtype=float)
        hx, hy, hz = self.half
        if abs(p[0]) > hx + tolerance or abs(p[2]) > hz + tolerance or abs(p[1]) > hy + tolerance:
            return None
        col = int(np.clip(np.floor((p[0] + hx) / (2 * hx) * self.cols), 0, self.cols - 1))
        row = int(np.clip(np.floor((hz - p[2]) / (2 * hz) * self.rows), 0, self.rows - 1))
        return row, col


@dataclass(frozen=True)
class SceneDescription:
    name: str
    robot_urdf: str                          # robot.urdf (a path or example-robot-data:<name>)
    robot_base: tuple[float, float, float]   # where the URDF's root link sits in the world
    physics_dt: float
    floor_z: float
    floor_half_size: tuple[float, float]
    table: BoxBody
    object: BoxBody
    object_joint: str                        # the object's free joint (MuJoCo)
    cameras: tuple[CameraSpec, ...]
    pads: tuple[TactilePad, ...] = field(default_factory=tuple)
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)
    # What a task adds (Task.scene): static bodies a task may place per episode. MuJoCo only
    # for now: the Gazebo and Isaac Sim generators refuse a scene with fixtures.
    fixtures: tuple[Fixture, ...] = ()

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"scene {self.name!r} has no camera {name!r}; it has "
                       f"{[c.name for c in self.cameras]}")

    def pad(self, name: str) -> TactilePad:
        for pad in self.pads:
            if pad.name == name:
                return pad
        raise KeyError(f"scene {self.name!r} has no tactile pad {name!r}; it has "
                       f"{[p.name for p in self.pads]}")

    @property
    def table_top_z(self) -> float:
        return float(self.table.pos[2] + self.table.half_size[2])


def refuse_fixtures(desc: SceneDescription, simulator: str) -> None:
    """A ValueError when ``desc`` has fixtures a generator does not build yet (only MuJoCo's
    does), rather than a world silently without them."""
    if desc.fixtures:
        raise ValueError(f"scene {desc.name!r} has fixtures {[f.name for f in desc.fixtures]} "
                         f"(from task.name's Task.scene), which {simulator} scenes do not "
                         f"build yet; expected a task without fixtures, or the MuJoCo stand-in")


def quat_to_matrix(quat_wxyz) -> np.ndarray:
    w, x, y, z = np.asarray(quat_wxyz, dtype=float) / np.linalg.norm(quat_wxyz)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    """(w, x, y, z) with w >= 0 of a rotation matrix."""
    m = np.asarray(rot, dtype=float)
    trace = np.trace(m)
    if trace > 0:
        s = 2 * np.sqrt(trace + 1)
        q = [s / 4, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * np.sqrt(1 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0] * 4
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = s / 4
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.array(q)
    return q if q[0] >= 0 else -q


# -- the pick_cube scene -------------------------------------------------------------------------
# Fingertip pad of the Panda finger in its link frame (the URDF's "rubber tip" box): centre and
# half sizes along x (width), y (toward the object), z (along the finger).
PANDA_PAD_CENTRE = (0.0, 0.0, 0.04525)
PANDA_PAD_HALF = (0.00875, 0.002, 0.00925)
CUBE_HALF = 0.025
# Where each mounted camera sits. The wrist camera looks along the gripper's approach axis (+z of
# the hand frame), offset so the fingertips are in view, like a RealSense on a Panda wrist mount.
_CAMERA_MOUNTS = {
    "front": dict(parent="world", pos=(1.25, 0.0, 0.45), xyaxes=(0, 1, 0, -0.35, 0, 0.94),
                  fovy_deg=45.0),
    "wrist": dict(parent="panda_hand", pos=(0.06, 0.0, 0.03),
                  quat=(0, 0.9659258, 0, 0.258819), fovy_deg=70.0),
}
# The render size of a mounted camera the configuration does not list (MuJoCo's offscreen size).
_DEFAULT_RENDER_SIZE = (640, 480)


def _cameras(cfg: Config, strict: bool = True) -> tuple[CameraSpec, ...]:
    sizes = {cam.name: (cam.width, cam.height) for cam in cfg.cameras if cam.backend == "sim"}
    unknown = sorted(set(sizes) - set(_CAMERA_MOUNTS))
    if unknown and strict:
        raise ValueError(f"simulated camera(s) {unknown} have no mount in scene 'pick_cube'; "
                         f"expected camera names among {sorted(_CAMERA_MOUNTS)}")
    return tuple(CameraSpec(name=name, width=sizes.get(name, _DEFAULT_RENDER_SIZE)[0],
                            height=sizes.get(name, _DEFAULT_RENDER_SIZE)[1], **mount)
                 for name, mount in _CAMERA_MOUNTS.items())


def robot_mounts(cfg: Config) -> tuple[list[CameraSpec], tuple[TactilePad, ...]]:
    """What rides on the robot in every scene: its cameras (not on "world") and the tactile pads
    of ``cfg.tactile`` with backend ``sim``. An MJCF scene may bring world cameras of other
    names, so those are not refused here."""
    pads = tuple(TactilePad(name=t.name, link=t.sim_body, centre=PANDA_PAD_CENTRE,
                            half=PANDA_PAD_HALF, rows=t.rows, cols=t.cols)
                 for t in cfg.tactile if t.backend == "sim")
    return [cam for cam in _cameras(cfg, strict=False) if cam.parent != "world"], pads


def pick_cube_description(cfg: Config) -> SceneDescription:
    """The pick_cube scene for ``cfg``: its robot, the render sizes of its cameras
    (``cfg.cameras``) and its simulated tactile pads (``cfg.tactile`` with backend ``sim``)."""
    cameras = _cameras(cfg)
    _, pads = robot_mounts(cfg)
    return SceneDescription(
        name="pick_cube",
        robot_urdf=cfg.robot.urdf,
        robot_base=(0.0, 0.0, 0.0),
        physics_dt=cfg.sim.physics_dt,
        floor_z=-0.75,
        floor_half_size=(2.0, 2.0),
        # Table top at z = 0, the robot base plane.
        table=BoxBody("table", half_size=(0.45, 0.6, 0.375), pos=(0.45, 0.0, -0.375),
                      rgba=(0.55, 0.45, 0.35, 1.0), friction=(1.0, 0.005, 0.0001)),
        object=BoxBody("cube", half_size=(CUBE_HALF,) * 3, pos=(0.5, 0.0, CUBE_HALF),
                       rgba=(0.85, 0.15, 0.1, 1.0), friction=(1.5, 0.005, 0.0001), mass=0.1),
        object_joint="cube_joint",
        cameras=cameras,
        pads=pads,
    )


def scene_description(cfg: Config) -> SceneDescription:
    """The description of ``cfg.sim.scene`` as the configured task (``task.name``) shapes it
    (``Task.scene``: the pick scene unchanged unless the task swaps the object or adds
    fixtures); a ValueError for a scene that is only an MJCF file (Gazebo and Isaac Sim need
    a description)."""
    if cfg.sim.scene == "pick_cube":
        from robot_rl.envs.registry import task_class
        return task_class(cfg.task.name).scene(pick_cube_description(cfg), cfg)
    raise ValueError(f"scene {cfg.sim.scene!r} has no simulator-neutral description (only "
                     f"{list(DESCRIBED_SCENES)} do); Gazebo and Isaac Sim need one, MuJoCo can "
                     f"also load an MJCF file")
