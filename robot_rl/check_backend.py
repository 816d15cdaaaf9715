"""``robot-rl check-backend``: does a live backend honour robot_rl's topic contract?

Any backend (the MuJoCo stand-in, a real arm through ros2_control, later Gazebo or Isaac Sim)
must publish the streams the configuration implies, with the right types, at the configured
rates, with stamps on one clock, and must clamp or refuse bad commands with a status. This
module holds what the contract expects of a configuration and the verdicts on what was measured;
it needs no ROS, so every rule is unit-tested on synthetic samples. ``robot_rl/ros/backend_probe.py``
gathers the samples from the live graph.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

import numpy as np

from robot_rl import topics
from robot_rl.config import Config

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

JOINT_STATE = "sensor_msgs/msg/JointState"
POSE = "geometry_msgs/msg/PoseStamped"
TWIST = "geometry_msgs/msg/TwistStamped"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
CLOCK = "rosgraph_msgs/msg/Clock"
STRING = "std_msgs/msg/String"
FLOAT64 = "std_msgs/msg/Float64"
TRIGGER = "std_srvs/srv/Trigger"


@dataclass
class Stream:
    """A stamped stream the backend publishes: topic, type and configured rate (Hz)."""
    topic: str
    type: str
    rate_hz: float
    sensor: bool = True      # sensor streams are checked for stamp alignment and latency


@dataclass
class Contract:
    streams: list[Stream]
    commands: dict[str, str]            # topics the backend must subscribe to -> type
    status_topic: str
    reset_service: str
    control_period: float               # s
    sim: bool                           # the config names the MuJoCo stand-in


def contract(cfg: Config, sim_clock: bool = False) -> Contract:
    """What a backend run with ``cfg`` must provide (docs/architecture.md, Interfaces).
    ``sim_clock``: a simulator behind the ros2_control path (Gazebo, Isaac Sim) stamps on its
    ``/clock``, which it must then publish (docs/simulators.md)."""
    from robot_rl.ros import messages as t  # the contract's names (imports rclpy.qos)
    sim = cfg.driver.adapter == "sim"
    control = cfg.control_rate_hz
    state_rate = control if sim else cfg.driver.publish_rate_hz
    streams = [Stream(t.JOINT_STATES, JOINT_STATE, state_rate),
               Stream(t.EE_POSE, POSE, state_rate),
               Stream(t.EE_TWIST, TWIST, state_rate)]
    for cam in cfg.cameras:
        # The stand-in renders a camera every round(control / fps) periods.
        rate = control / max(1, round(control / cam.fps)) if cam.backend == "sim" else cam.fps
        streams.append(Stream(t.camera_image_topic(cam.name), IMAGE, rate))
        streams.append(Stream(t.camera_info_topic(cam.name), CAMERA_INFO, rate))
    for sensor in cfg.tactile:
        rate = control if sensor.backend == "sim" else sensor.fps
        streams.append(Stream(t.tactile_topic(sensor.name), IMAGE, rate))
    if sim or sim_clock:
        streams.append(Stream(topics.CLOCK, CLOCK, control, sensor=False))
    return Contract(streams=streams,
                    commands={t.EE_TARGET: POSE, t.JOINT_TARGET: JOINT_STATE,
                              t.GRIPPER_TARGET: FLOAT64},
                    status_topic=t.DRIVER_STATUS, reset_service=t.SCENE_RESET,
                    control_period=1.0 / control, sim=sim)


@dataclass
class Samples:
    """What the probe recorded of one stream, one entry per message."""
    stamps: list[float] = field(default_factory=list)        # header stamp, s (backend clock)
    wall: list[float] = field(default_factory=list)          # receipt, s (system clock)
    latency: list[float] = field(default_factory=list)       # DDS source -> receipt, s


@dataclass
class Result:
    check: str
    subject: str
    status: str
    measured: str = ""
    expected: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def _fmt_hz(value: float) -> str:
    return f"{value:.1f} Hz" if math.isfinite(value) else "-"


def check_presence(spec: Contract, published: dict[str, list[str]],
                   subscribed: dict[str, list[str]]) -> list[Result]:
    """``published``/``subscribed``: topic -> types, with at least one publisher/subscriber."""
    results = []
    for stream in spec.streams + [Stream(spec.status_topic, STRING, 0.0, sensor=False)]:
        types = published.get(stream.topic)
        ok = types is not None and stream.type in types
        results.append(Result("topic", stream.topic, PASS if ok else FAIL,
                              ", ".join(types) if types else "no publisher",
                              f"published, {stream.type}"))
    for topic, type_ in spec.commands.items():
        types = subscribed.get(topic)
        ok = types is not None and type_ in types
        results.append(Result("topic", topic, PASS if ok else FAIL,
                              ", ".join(types) if types else "no subscriber",
                              f"subscribed, {type_}"))
    return results


def stamp_rate(stamps: list[float]) -> float:
    """Messages per second of the backend's own clock (sim time or wall time)."""
    if len(stamps) < 3:
        return math.nan
    span = stamps[-1] - stamps[0]
    return (len(stamps) - 1) / span if span > 0 else math.inf


def check_rate(stream: Stream, samples: Samples, tolerance: float, wall_time: bool) -> Result:
    """The rate on the backend's clock within ``tolerance`` (a fraction) of the configured one,
    stamps never running backwards, and on a wall-clock backend the receipt rate agreeing."""
    expected = f"{stream.rate_hz:.1f} Hz ± {tolerance:.0%}"
    if len(samples.stamps) < 3:
        return Result("rate", stream.topic, FAIL, f"{len(samples.stamps)} messages", expected)
    steps = np.diff(samples.stamps)
    backwards = int(np.sum(steps < 0))
    if backwards:
        return Result("rate", stream.topic, FAIL,
                      f"stamps ran backwards {backwards}× (by up to {-steps.min() * 1e3:.3f} ms)",
                      "non-decreasing stamps")
    rate = stamp_rate(samples.stamps)
    wall_rate = stamp_rate(samples.wall)
    low, high = stream.rate_hz * (1 - tolerance), stream.rate_hz * (1 + tolerance)
    ok = low <= rate <= high
    measured = f"{_fmt_hz(rate)} (wall {_fmt_hz(wall_rate)})"
    if wall_time and not low <= wall_rate <= high:
        ok = False
    return Result("rate", stream.topic, PASS if ok else FAIL, measured, expected)


def paired_offsets(got: Samples, reference: Samples) -> np.ndarray:
    """For each message, |its stamp - the stamp of the reference message received nearest in
    wall time| (s). Pairing by receipt, not by nearest stamp, exposes a constant clock offset
    even when it happens to be a multiple of the reference's period."""
    ref_wall = np.asarray(reference.wall, dtype=float)
    ref_stamps = np.asarray(reference.stamps, dtype=float)
    wall = np.asarray(got.wall, dtype=float)
    idx = np.clip(np.searchsorted(ref_wall, wall), 1, len(ref_wall) - 1)
    nearer = np.where(np.abs(wall - ref_wall[idx - 1]) <= np.abs(wall - ref_wall[idx]),
                      idx - 1, idx)
    return np.abs(np.asarray(got.stamps, dtype=float) - ref_stamps[nearer])


def check_alignment(spec: Contract, samples: dict[str, Samples], reference: str) -> list[Result]:
    """Every sensor stream's stamps are within a control period of the joint state received
    with it: all streams on one clock (a device clock or a wrong epoch shows up as seconds)."""
    ref = samples.get(reference)
    results = []
    expected = f"median ≤ {spec.control_period * 1e3:.1f} ms from {reference}"
    for stream in spec.streams:
        if not stream.sensor or stream.topic == reference:
            continue
        got = samples.get(stream.topic)
        if ref is None or len(ref.stamps) < 2 or got is None or not got.stamps:
            results.append(Result("stamp alignment", stream.topic, SKIP, "no samples", expected))
            continue
        offsets = paired_offsets(got, ref)
        median = float(np.median(offsets))
        results.append(Result("stamp alignment", stream.topic,
                              PASS if median <= spec.control_period else FAIL,
                              f"median {median * 1e3:.2f} ms, max {offsets.max() * 1e3:.2f} ms",
                              expected))
    return results


def check_clock(spec: Contract, samples: dict[str, Samples], clock: Samples | None,
                reference: str, wall_tolerance: float = 1.0) -> Result:
    """With ``/clock`` (sim time) stamps follow it; without, stamps are the wall clock."""
    ref = samples.get(reference)
    if ref is None or not ref.stamps:
        return Result("clock", reference, FAIL, "no samples", "stamped messages")
    stamps = np.asarray(ref.stamps)
    wall_age = np.asarray(ref.wall) - stamps
    if clock is not None and clock.stamps:
        # Each stamp is compared with the newest /clock received before it arrived.
        clock_wall = np.asarray(clock.wall)
        idx = np.searchsorted(clock_wall, np.asarray(ref.wall), side="right") - 1
        valid = idx >= 0
        if not np.any(valid):
            return Result("clock", reference, FAIL, "no /clock before the samples",
                          "stamps follow /clock")
        lag = np.abs(np.asarray(clock.stamps)[idx[valid]] - stamps[valid])
        ok = float(np.median(lag)) <= spec.control_period
        return Result("clock", reference, PASS if ok else FAIL,
                      f"sim time: median |stamp - /clock| {np.median(lag) * 1e3:.2f} ms",
                      f"sim time (/clock present): ≤ {spec.control_period * 1e3:.1f} ms")
    median_age = float(np.median(wall_age))
    ok = abs(median_age) <= wall_tolerance
    if spec.sim and ok:
        return Result("clock", reference, FAIL, "wall-time stamps but no /clock",
                      "the MuJoCo stand-in publishes /clock")
    return Result("clock", reference, PASS if ok else FAIL,
                  f"wall time: median receipt - stamp {median_age * 1e3:.2f} ms",
                  f"wall time (no /clock): |age| ≤ {wall_tolerance * 1e3:.0f} ms")


def check_latency(stream: Stream, samples: Samples, limit: float) -> Result:
    """Publication -> receipt (DDS source and reception timestamps) p99 within ``limit`` s."""
    if not samples.latency:
        return Result("latency", stream.topic, SKIP, "no samples", "")
    values = np.asarray(samples.latency) * 1e3
    p50, p99 = np.percentile(values, [50, 99])
    return Result("latency", stream.topic, PASS if p99 <= limit * 1e3 else FAIL,
                  f"p50 {p50:.2f} / p99 {p99:.2f} ms", f"p99 ≤ {limit * 1e3:.1f} ms")


def status_answers(statuses: list[str], prefixes: tuple[str, ...], must_contain: str) -> str | None:
    """The first status line with one of ``prefixes`` that mentions ``must_contain``."""
    for line in statuses:
        if line.startswith(prefixes) and must_contain in line:
            return line
    return None


def outside_box(point, box_min, box_max) -> float:
    """Distance (m) from ``point`` to the box; 0 inside."""
    point = np.asarray(point, dtype=float)
    out = np.maximum(np.asarray(box_min) - point, 0.0) + np.maximum(point - np.asarray(box_max), 0.0)
    return float(np.linalg.norm(out))


def outside_box_joint_target(kinematics, q_start: np.ndarray, box_min, box_max,
                             q_min: np.ndarray, q_max: np.ndarray) -> tuple[np.ndarray, str]:
    """A joint target inside the joint limits whose TCP lies outside the workspace box, found by
    bending the shoulder and elbow forward from ``q_start`` until the TCP leaves the box."""
    box_min, box_max = np.asarray(box_min), np.asarray(box_max)
    for step in np.linspace(0.05, 1.5, 30):
        for joint, sign in ((1, 1.0), (3, 1.0), (1, -1.0), (0, 1.0)):
            q = np.array(q_start, dtype=float)
            q[joint] += sign * step
            q = np.clip(q, q_min, q_max)
            tcp = kinematics.forward(q).translation
            below, above = tcp < box_min, tcp > box_max
            if below.any() or above.any():
                axis = int(np.flatnonzero(below | above)[0])
                face = f"{'xyz'[axis]}_{'min' if below[axis] else 'max'}"
                return q, face
    raise ValueError("no joint target within the joint limits takes the TCP out of the "
                     f"workspace box {box_min.tolist()}..{box_max.tolist()} from {q_start}")


def render_table(results: list[Result], title: str) -> str:
    """The results as a table (rich), returned as text so the CLI and tests share it."""
    from io import StringIO

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for column in ("check", "subject", "result", "measured", "expected"):
        table.add_column(column)
    colours = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}
    for r in results:
        # Status lines quote arrays ("[nan 0. 0.]"), which rich would take for markup.
        table.add_row(r.check, escape(r.subject), f"[{colours[r.status]}]{r.status}[/]",
                      escape(r.measured), escape(r.expected))
    buffer = StringIO()
    Console(file=buffer, width=160, force_terminal=False).print(table)
    return buffer.getvalue()


def markdown_table(results: list[Result]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")  # "|q - home|" must not split the cell

    lines = ["| check | subject | result | measured | expected |", "|---|---|---|---|---|"]
    lines += [f"| {r.check} | `{r.subject}` | {r.status} | {cell(r.measured)} | "
              f"{cell(r.expected)} |" for r in results]
    return "\n".join(lines)


def check_arguments(args) -> None:
    """Refuse settings that would make every verdict meaningless, naming what is expected."""
    from robot_rl.schema import ConfigError
    if not args.duration > 0:
        raise ConfigError(f"--duration {args.duration}: expected seconds > 0")
    if not 0 < args.rate_tolerance < 1:
        raise ConfigError(f"--rate-tolerance {args.rate_tolerance}: expected a fraction in "
                          f"(0, 1), e.g. 0.2 for ±20 %")
    if args.latency_limit is not None and not args.latency_limit > 0:
        raise ConfigError(f"--latency-limit {args.latency_limit}: expected seconds > 0")
    if not args.discovery_timeout > 0:
        raise ConfigError(f"--discovery-timeout {args.discovery_timeout}: expected seconds > 0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of passive measurement (rates, stamps, latency)")
    parser.add_argument("--rate-tolerance", type=float, default=0.2,
                        help="allowed relative deviation from the configured rates")
    parser.add_argument("--latency-limit", type=float, default=None,
                        help="p99 sensor->subscriber latency limit in s (default: one control "
                             "period)")
    parser.add_argument("--discovery-timeout", type=float, default=20.0,
                        help="seconds to wait for the backend's topics to appear")
    parser.add_argument("--no-motion", action="store_true",
                        help="skip the command probes (they move the arm briefly) and the reset")
    parser.add_argument("--markdown", default="", help="also write the table as Markdown here")
    parser.add_argument("--sim-clock", action="store_true",
                        help="the backend is a simulator on its own /clock behind the ros2_control "
                             "path (Gazebo, Isaac Sim): /clock is part of the contract and stamps "
                             "must follow it")
