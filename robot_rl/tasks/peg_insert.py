"""Tactile peg-in-hole insertion (``task.name: peg_insert``), written only against the task
interface and the scene seam a user's task has (``Task.scene``, ``Task.place_scene``,
docs/tasks.md): nothing else in robot_rl knows about pegs or holes.

The scene: the pick scene's cube becomes a square peg, started grasped between the fingertip
pads at every reset (as in SERL's peg insertion); a block with a square hole ``clearance``
wider than the peg is a fixture placed per episode within ``hole_x`` / ``hole_y`` /
``hole_yaw``. The policy moves the TCP (``dx dy dz``; the gripper stays closed on the peg) and
sees, besides the ``task.observations`` groups (proprioception, fingertip taxels, images),
``hole_estimate``: the hole's top centre minus the TCP from a coarse estimate, off by an
error drawn per episode (``estimate_noise`` m per horizontal axis, like a camera's estimate),
so that feeling the block through the peg has something to add. Success, from simulator
state: the peg's tip ``depth`` below the block's top, inside the hole.

``config/peg_insert.yaml`` is the configuration that goes with it (home pose above the hole,
1 cm action steps, episode length).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from robot_rl.envs.task import HumanView, Snapshot, Task, register_task
from robot_rl.robot.controller import matrix_to_quat_xyzw, quat_xyzw_to_matrix
from robot_rl.schema import ConfigError

HOLE = "hole"  # the fixture's name
IN_HOLE = 0.002  # m of the tip below the block's top, inside: a watcher's "it is in"
HANDED_BACK = 0.005  # m short of the success depth where the simulated human lets go


@dataclass(frozen=True)
class PegParams:
    """``task.params`` of ``peg_insert`` (metres, radians)."""
    peg_half_width: float = 0.006      # a 12 mm square peg
    peg_half_length: float = 0.03      # 6 cm long
    # Peg centre below the TCP: its top 4 mm above the TCP, inside the fingertip pads (a peg
    # end flush with a pad's edge put the contact points on the taxels' border, read as 0).
    grasp_depth: float = 0.026
    clearance: float = 0.001           # hole side minus peg side
    block_half_width: float = 0.04     # the hole block: 8 cm square
    block_height: float = 0.03         # and 3 cm high (the hole goes through it)
    depth: float = 0.015               # insertion depth that counts as success
    chamfer: float = 0.002             # lead-in around the rim (0: a sharp-edged hole)
    friction: float = 0.3              # of the peg and the block (the fingers grip at 1.5)
    hole_x: tuple = (0.48, 0.52)       # hole centre drawn per episode
    hole_y: tuple = (-0.02, 0.02)
    hole_yaw: tuple = (-0.03, 0.03)
    estimate_noise: float = 0.0015     # std (m) of the hole estimate's error per horizontal axis
    lost_distance: float = 0.03        # peg centre this far from where it was grasped: dropped
    settle_s: float = 0.1              # physics time to let the grasp settle at reset
    seed: int = 0                      # the estimate's error where no rng is given (controller)

    @property
    def hole_half(self) -> float:
        return self.peg_half_width + self.clearance / 2

    @classmethod
    def from_cfg(cls, cfg) -> "PegParams":
        params = dict(cfg.task.params or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ConfigError(f"task.params {unknown} are not parameters of task 'peg_insert'; "
                              f"expected some of {sorted(names)}")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in params:
                continue
            value = params[f.name]
            if isinstance(f.default, tuple):
                ok = (isinstance(value, (list, tuple)) and len(value) == 2
                      and all(isinstance(v, (int, float)) for v in value) and value[0] <= value[1])
                if not ok:
                    raise ConfigError(f"task.params.{f.name}: expected [low, high] numbers with "
                                      f"low <= high, got {value!r}")
                value = (float(value[0]), float(value[1]))
            elif f.name == "seed":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ConfigError(f"task.params.seed: expected an integer, got {value!r}")
            else:
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                    raise ConfigError(f"task.params.{f.name}: expected a number >= 0, got "
                                      f"{value!r}")
                value = float(value)
            values[f.name] = value
        p = cls(**values)
        if p.clearance <= 0 or p.peg_half_width <= 0 or p.peg_half_length <= 0:
            raise ConfigError(f"task.params: peg_half_width, peg_half_length and clearance must "
                              f"be > 0, got {p.peg_half_width}, {p.peg_half_length}, "
                              f"{p.clearance}")
        if p.hole_half >= p.block_half_width:
            raise ConfigError(f"task.params.block_half_width {p.block_half_width} must exceed "
                              f"the hole's half side {p.hole_half}")
        if p.depth >= p.block_height:
            raise ConfigError(f"task.params.depth {p.depth} must be less than block_height "
                              f"{p.block_height} (the hole's depth)")
        return p


def hole_block(p: PegParams, rgba=(0.3, 0.45, 0.7, 1.0)):
    """The block as four walls around a square hole (origin: the hole's centre on the table),
    with a lead-in: four 45-degree ridges around the rim whose inner slopes rise ``chamfer`` m
    outward from the hole's edge (boxes turned 45 degrees about the rim's edge)."""
    from robot_rl.sim.scene_description import BoxBody, Fixture

    a, b, h = p.hole_half, p.block_half_width, p.block_height / 2
    wall, friction = (b - a) / 2, (p.friction, 0.005, 0.0001)
    parts = [
        BoxBody("hole_wall_px", (wall, b, h), (a + wall, 0.0, h), rgba, friction),
        BoxBody("hole_wall_nx", (wall, b, h), (-a - wall, 0.0, h), rgba, friction),
        BoxBody("hole_wall_py", (a, wall, h), (0.0, a + wall, h), rgba, friction),
        BoxBody("hole_wall_ny", (a, wall, h), (0.0, -a - wall, h), rgba, friction),
    ]
    if p.chamfer > 0:
        # A square of half side c turned 45 degrees is a diamond reaching c*sqrt(2) = chamfer
        # each way: centred `chamfer` outside the rim on the block's top, its inner corner is
        # the hole's edge and its inner upper face a 45-degree slope rising `chamfer` outward.
        c = p.chamfer / np.sqrt(2)
        r = a + p.chamfer
        s45 = np.sin(np.pi / 8)   # quaternion of a 45-degree turn: (cos 22.5, sin 22.5 * axis)
        c45 = np.cos(np.pi / 8)
        top = 2 * h
        ridge = b - 0.002
        parts += [
            BoxBody("hole_lead_px", (c, ridge, c), (r, 0.0, top), rgba, friction,
                    quat=(c45, 0.0, s45, 0.0)),
            BoxBody("hole_lead_nx", (c, ridge, c), (-r, 0.0, top), rgba, friction,
                    quat=(c45, 0.0, s45, 0.0)),
            BoxBody("hole_lead_py", (ridge, c, c), (0.0, r, top), rgba, friction,
                    quat=(c45, s45, 0.0, 0.0)),
            BoxBody("hole_lead_ny", (ridge, c, c), (0.0, -r, top), rgba, friction,
                    quat=(c45, s45, 0.0, 0.0)),
        ]
    return Fixture(HOLE, (0.5, 0.0, 0.0), tuple(parts))


@register_task("peg_insert")
class PegInsertTask(Task):
    """Insert the grasped peg into the hole; see the module docstring."""

    # On a robot the peg stays in the hand: the arm going home (above the hole) is the reset.
    reset_strategy = "move"
    # The hole estimate and success read the hole's pose; success reads the peg's.
    privileged = frozenset({"object_pos", "fixtures"})

    def __init__(self, cfg, home_quat):
        self.params = PegParams.from_cfg(cfg)
        self.rng = np.random.default_rng(self.params.seed)
        self.estimate_error = np.zeros(3)
        super().__init__(cfg, home_quat)
        self.gripper_closed = True

    # -- the scene (class-level: the simulator calls these without a task) --------------------
    @classmethod
    def scene(cls, desc, cfg):
        from robot_rl.sim.scene_description import BoxBody

        p = PegParams.from_cfg(cfg)
        peg = BoxBody("peg", (p.peg_half_width, p.peg_half_width, p.peg_half_length),
                      (0.3, 0.3, p.peg_half_length), (0.9, 0.6, 0.1, 1.0),
                      (p.friction, 0.005, 0.0001), mass=0.05)
        return dataclasses.replace(desc, name="peg_insert", object=peg, object_joint="peg_joint",
                                   fixtures=desc.fixtures + (hole_block(p),))

    @classmethod
    def place_scene(cls, world, rng):
        p = PegParams.from_cfg(world.cfg)
        x, y, yaw = rng.uniform(*p.hole_x), rng.uniform(*p.hole_y), rng.uniform(*p.hole_yaw)
        world.set_fixture_pose(HOLE, [x, y, 0.0], yaw)
        tcp, quat = world.ee_pose()
        rot = quat_xyzw_to_matrix(quat)
        world.set_object_pose(tcp + rot @ [0.0, 0.0, p.grasp_depth],
                              [quat[3], quat[0], quat[1], quat[2]])
        world.hold_fingers(2 * p.peg_half_width)
        world.step_physics(max(1, round(p.settle_s / world.cfg.sim.physics_dt)))

    # -- observation and action -----------------------------------------------------------------
    def make_action_names(self) -> list[str]:
        return ["dx", "dy", "dz"]

    def observation_spaces(self) -> dict[str, spaces.Space]:
        return {**super().observation_spaces(),
                "hole_estimate": spaces.Box(-np.inf, np.inf, (3,), np.float32)}

    def reset(self, snap: Snapshot | None = None, rng: np.random.Generator | None = None) -> None:
        super().reset(snap, rng)
        self.gripper_closed = True
        draw = rng if rng is not None else self.rng
        self.estimate_error = np.array([*draw.normal(0.0, self.params.estimate_noise, 2), 0.0])

    def hole_top(self, snap: Snapshot) -> np.ndarray:
        """The true centre of the hole's mouth (simulator state)."""
        if HOLE not in snap.fixtures:
            raise ValueError("peg_insert needs the hole's pose (Snapshot.fixtures['hole']): "
                             "simulator state of the MuJoCo stand-in")
        return snap.fixtures[HOLE][:3] + [0.0, 0.0, self.params.block_height]

    def hole_estimate(self, snap: Snapshot) -> np.ndarray:
        """Where the policy (and the expert) believe the hole's mouth is, base frame."""
        return self.hole_top(snap) + self.estimate_error

    def observe(self, snap: Snapshot) -> dict[str, np.ndarray]:
        obs = super().observe(snap)
        obs["hole_estimate"] = np.asarray(
            self.vector_to_task_frame(self.hole_estimate(snap) - snap.ee_pos, snap), np.float32)
        return obs

    def command(self, action: np.ndarray, snap: Snapshot):
        action = self.check_action(action)
        target = snap.ee_pos + self.vector_to_base_frame(action * self.task.max_step_pos, snap)
        return target, matrix_to_quat_xyzw(self.home_rot), 0.0

    # -- success ------------------------------------------------------------------------------
    def peg_in_hole(self, snap: Snapshot) -> tuple[float, bool]:
        """(how deep the peg's tip is below the block's top in m, whether it is inside the
        hole's footprint)."""
        if snap.object_pos is None:
            return 0.0, False
        top = self.hole_top(snap)
        hole_rot = quat_xyzw_to_matrix(snap.fixtures[HOLE][3:])
        offset = hole_rot.T @ (np.asarray(snap.object_pos) - top)
        tip_depth = -(offset[2] - self.params.peg_half_length)
        inside = bool(np.all(np.abs(offset[:2]) < self.params.hole_half))
        return float(tip_depth), inside

    def success(self, snap: Snapshot) -> bool:
        depth, inside = self.peg_in_hole(snap)
        return inside and depth >= self.params.depth

    def peg_lost(self, snap: Snapshot) -> bool:
        if snap.object_pos is None:
            return False
        held_at = snap.ee_pos + quat_xyzw_to_matrix(snap.ee_quat) @ [0, 0, self.params.grasp_depth]
        return bool(np.linalg.norm(np.asarray(snap.object_pos) - held_at) > self.params.lost_distance)

    def terminated(self, snap: Snapshot, success: bool) -> bool:
        return bool(success) or self.peg_lost(snap)

    def human_view(self, snap: Snapshot, start: Snapshot) -> HumanView:
        """Distance: the peg's tip to the hole's mouth (0 once in); settled: the tip ``IN_HOLE``
        m into the hole (the policy found it: no takeover); done: a correction pushed it to
        ``HANDED_BACK`` m short of success (the last push is left to the policy, as the pick's
        human hands back a cube held just short of the lift)."""
        if snap.object_pos is None:
            raise ValueError("the simulated human needs the peg's pose (/sim/object_pose)")
        depth, inside = self.peg_in_hole(snap)
        tip = np.asarray(snap.object_pos, float) - [0.0, 0.0, self.params.peg_half_length]
        in_hole = inside and depth >= IN_HOLE
        distance = 0.0 if in_hole else float(np.linalg.norm(tip - self.hole_top(snap)))
        return HumanView(distance, settled=in_hole,
                         done=f"corrected: the peg's tip {depth * 1000:.1f} mm into the hole"
                         if in_hole and depth >= self.params.depth - HANDED_BACK else "")

    def expert(self, noise: float = 0.0, rng: np.random.Generator | None = None):
        from robot_rl.tasks.peg_expert import PegInsertExpert

        return PegInsertExpert(self, noise=noise, rng=rng)
