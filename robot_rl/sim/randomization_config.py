"""Typed configs of the MuJoCo stand-in's domain randomisation and physics settings.

``sim.randomization``: per-episode ranges (docs/sim_to_real.md), drawn at every reset by
``robot_rl.sim.randomization``. Scales multiply the compiled model's nominal value; a range is
``[low, high]`` and ``[1, 1]`` (scales) or ``[0, 0]`` (noise, latency) leaves the quantity alone.
``sim.physics``: solver and contact settings that replace the scene file's (the "shifted"
simulator of the sim-to-sim check sets them). Plain dataclasses: no MuJoCo import here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from robot_rl.schema import FieldError, require


def _range(obj, name: str, minimum: float, *, strict: bool = False,
           maximum: float | None = None, integer: bool = False) -> None:
    """``obj.<name>`` must be ``[low, high]`` with ``minimum <(=) low <= high (<= maximum)``."""
    lo_hi = getattr(obj, name)
    bound = f"{'>' if strict else '>='} {minimum:g}" + (
        f" and <= {maximum:g}" if maximum is not None else "")
    kind = "integers" if integer else "numbers"
    expected = f"expected [low, high] with low <= high, both {kind} {bound}"
    if len(lo_hi) != 2:
        raise FieldError(name, f"has {len(lo_hi)} values {list(lo_hi)}; {expected}")
    lo, hi = lo_hi
    if integer and not all(isinstance(v, int) and not isinstance(v, bool) for v in lo_hi):
        raise FieldError(name, f"{list(lo_hi)} are not whole control periods; {expected}")
    if not all(math.isfinite(v) for v in lo_hi):
        raise FieldError(name, f"{list(lo_hi)} is not finite; {expected}")
    if lo > hi:
        raise FieldError(name, f"[{lo:g}, {hi:g}] is inverted (low > high); {expected}")
    if (lo <= minimum if strict else lo < minimum) or (maximum is not None and hi > maximum):
        raise FieldError(name, f"[{lo:g}, {hi:g}] is physically impossible; {expected}")


@dataclass
class RandomizationConfig:
    """Per-episode domain randomisation of the stand-in (off by default: nominal sim)."""
    enabled: bool = False
    seed: int = 0                     # episode k's values come from (seed, k), or the reset seed
    log_file: str = ""                # append one JSON line per episode: the values applied
    # Physics: scales of the compiled model's nominal values.
    friction_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])     # sliding, all geoms
    object_mass_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # mass + inertia
    link_mass_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])    # robot links
    joint_damping_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    gain_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # controller stiffness
    # Latency in control periods (integers): actions applied / observations seen k periods late.
    action_latency: list[int] = field(default_factory=lambda: [0, 0])
    observation_latency: list[int] = field(default_factory=lambda: [0, 0])
    # Sensor noise: the per-episode standard deviation is drawn from the range.
    tcp_noise: list[float] = field(default_factory=lambda: [0.0, 0.0])      # m, TCP position
    gripper_noise: list[float] = field(default_factory=lambda: [0.0, 0.0])  # m, finger opening
    object_noise: list[float] = field(default_factory=lambda: [0.0, 0.0])   # m, cube position
    # Cameras: uniform offsets within +- these, per episode and camera.
    camera_pos_jitter: float = 0.0    # m per axis
    camera_rot_jitter: float = 0.0    # rad about a random axis
    camera_fovy_jitter: float = 0.0   # deg of vertical field of view (the intrinsics follow)
    # Appearance.
    light_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])  # diffuse, all lights
    color_jitter: float = 0.0         # +- per RGB channel of every geom and material
    # Tactile: reading * gain + N(0, noise) per taxel.
    tactile_gain_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    tactile_noise: list[float] = field(default_factory=lambda: [0.0, 0.0])  # N

    def validate(self) -> None:
        for name in ("friction_scale", "object_mass_scale", "link_mass_scale", "gain_scale",
                     "tactile_gain_scale"):
            _range(self, name, 0.0, strict=True)
        for name in ("joint_damping_scale", "tcp_noise", "gripper_noise", "object_noise",
                     "light_scale", "tactile_noise"):
            _range(self, name, 0.0)
        for name in ("action_latency", "observation_latency"):
            _range(self, name, 0, integer=True)
        require(self, 0, "camera_pos_jitter", "camera_rot_jitter")
        if not 0 <= self.camera_fovy_jitter < 30:
            raise FieldError("camera_fovy_jitter", f"must be in [0, 30) deg, got "
                                                   f"{self.camera_fovy_jitter!r}")
        if not 0 <= self.color_jitter <= 1:
            raise FieldError("color_jitter", f"must be in [0, 1] (RGB channels are 0..1), got "
                                             f"{self.color_jitter!r}")
        if self.log_file and not self.log_file.endswith(".jsonl"):
            raise FieldError("log_file", f"{self.log_file!r} must end in .jsonl (or be '')")


@dataclass
class PhysicsConfig:
    """MuJoCo solver and contact settings; the defaults keep the scene file's."""
    integrator: Literal["scene", "Euler", "RK4", "implicit", "implicitfast"] = "scene"
    cone: Literal["scene", "pyramidal", "elliptic"] = "scene"
    noslip_iterations: int = -1       # -1: the scene's
    impratio: float = 0.0             # 0: the scene's
    solref: list[float] = field(default_factory=list)   # [] or [timeconst s, dampratio], all geoms
    solimp: list[float] = field(default_factory=list)   # [] or [dmin, dmax, width m, mid, power]

    def validate(self) -> None:
        require(self, -1, "noslip_iterations")
        require(self, 0, "impratio")
        if self.solref and not (len(self.solref) == 2 and self.solref[0] > 0
                                and self.solref[1] > 0):
            raise FieldError("solref", f"{self.solref} is not [timeconst > 0 s, dampratio > 0] "
                                       f"(or [] for the scene's)")
        if self.solimp:
            ok = (len(self.solimp) == 5 and 0 < self.solimp[0] <= self.solimp[1] < 1
                  and self.solimp[2] > 0 and 0 < self.solimp[3] < 1 and self.solimp[4] >= 1)
            if not ok:
                raise FieldError("solimp", f"{self.solimp} is not [dmin, dmax, width, midpoint, "
                                           f"power] with 0 < dmin <= dmax < 1, width > 0, "
                                           f"0 < midpoint < 1, power >= 1 (or [] for the "
                                           f"scene's)")
