"""Run report: episode log (CSV), PNG plots and a Markdown summary. ROS-free."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from robot_rl import topics as T

FIELDS = ["phase", "wall_s", "env_steps", "actor_id", "episode", "event", "success",
          "return", "length", "interventions", "intervention_rate"]


@dataclass
class EpisodeRecord:
    phase: str            # demos | train | eval
    wall_s: float         # seconds since the run started (all stages, resumes included)
    env_steps: int        # environment steps of this phase when the episode ended
    actor_id: int
    episode: int
    event: str            # success | failure | timeout
    success: bool
    ret: float
    length: int
    interventions: int
    intervention_rate: float


class EpisodeLog:
    """Append-only CSV, so an interrupted run keeps every finished episode."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(FIELDS)

    def append(self, rec: EpisodeRecord) -> None:
        row = asdict(rec)
        row["return"] = row.pop("ret")
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerow(row)

    def read(self, phase: str | None = None) -> list[dict]:
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        out = []
        for row in rows:
            if phase and row["phase"] != phase:
                continue
            row["success"] = row["success"] in ("True", "true", "1")
            for key in ("wall_s", "return", "intervention_rate"):
                row[key] = float(row[key])
            for key in ("env_steps", "actor_id", "episode", "length", "interventions"):
                row[key] = int(float(row[key]))
            out.append(row)
        return out


def rolling(values: list[float], window: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (csum[idx] - csum[start]) / (idx - start)


def plot_training(rows: list[dict], out_dir: str | os.PathLike, window: int = 10) -> list[Path]:
    """Success and intervention rate against environment steps and wall-clock time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = []
    if not rows:
        return paths
    steps = [r["env_steps"] for r in rows]
    wall = [r["wall_s"] / 60 for r in rows]
    success = rolling([float(r["success"]) for r in rows], window)
    interventions = rolling([r["intervention_rate"] for r in rows], window)
    for x, label, name in ((steps, "environment steps", "vs_steps"),
                           (wall, "wall-clock time (min)", "vs_time")):
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
        ax.plot(x, success, label=f"success rate (last {window} episodes)")
        ax.plot(x, interventions, label=f"intervention rate (last {window} episodes)")
        ax.set_xlabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="center right", fontsize=8)
        ax.set_title("Online training")
        fig.tight_layout()
        path = out_dir / f"training_{name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def write_summary(path: str | os.PathLike, title: str, numbers: dict, plots: list[Path],
                  notes: list[str] | None = None) -> None:
    lines = [f"# {title}", "", "| Figure | Value |", "|---|---|"]
    for key, value in numbers.items():
        if isinstance(value, float):
            value = f"{value:.3g}"
        lines.append(f"| {key} | {value} |")
    lines.append("")
    for plot in plots:
        lines.append(f"![{plot.stem}]({plot.name})")
        lines.append("")
    for note in notes or []:
        lines.append(f"- {note}")
    Path(path).write_text("\n".join(lines) + "\n")
    Path(path).with_suffix(".json").write_text(json.dumps(numbers, indent=2, default=str))


def speed_vs_demos(prefix: str, steps_to_success: list[float], demo_mean_steps: float | None) -> dict:
    """``{prefix}_mean_steps_to_success`` over a policy's successful episodes and, with the
    demonstrations' mean, ``{prefix}_speedup_vs_demos`` (demo steps / policy steps: > 1 is faster
    than the demonstrations). Nothing for a figure that does not exist (no success, no demos)."""
    if any(not np.isfinite(s) or s <= 0 for s in steps_to_success):
        raise ValueError(f"{prefix}: steps to success must be finite and > 0, got {steps_to_success}")
    if not steps_to_success:
        return {}
    mean = float(np.mean(steps_to_success))
    out = {f"{prefix}_mean_steps_to_success": round(mean, 2)}
    if demo_mean_steps:
        out[f"{prefix}_speedup_vs_demos"] = round(demo_mean_steps / mean, 3)
    return out


# -- media of deployed episodes (from an MCAP recording) ------------------------------------------
def write_gif(frames: list[np.ndarray], path: str | os.PathLike, fps: float = 10.0,
              scale: int = 2) -> Path:
    """An animated GIF of uint8 RGB frames, each pixel ``scale`` x ``scale`` (Pillow).
    Written to a temporary name, then renamed."""
    from PIL import Image

    if not frames:
        raise ValueError(f"{path}: no frames to write; expected at least one RGB image")
    images = []
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{path}: frame {i} is {frame.dtype} {frame.shape}; expected uint8 "
                             f"H x W x 3 (rgb8)")
        image = Image.fromarray(frame)
        if scale > 1:
            image = image.resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
        images.append(image)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000 / fps)), loop=0)
    os.replace(tmp, path)
    return path


def _image_array(msg) -> np.ndarray:
    channels = {"rgb8": 3, "mono8": 1}.get(msg.encoding)
    if channels is None:
        raise ValueError(f"image encoding {msg.encoding!r}; expected rgb8 or mono8")
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    frame = data[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    return np.repeat(frame, 3, axis=2) if channels == 1 else frame


def active_intervals(recording) -> list[tuple[int, int]]:
    """(start, end) receive times (ns) while the controller forwarded the policy (mode
    ``POLICY`` in its ``/controller/status``): one interval per deployed episode."""
    intervals, start, last = [], None, None
    for message in recording.messages([T.CONTROLLER_STATUS], decode=True):
        active = json.loads(message.msg.data).get("mode") == "POLICY"
        if active and start is None:
            start = message.log_time_ns
        elif not active and start is not None:
            intervals.append((start, message.log_time_ns))
            start = None
        last = message.log_time_ns
    if start is not None:
        intervals.append((start, last))
    return intervals


def deployed_frames(recording_path: str | os.PathLike, camera: str = "front",
                    episodes: int = 3, max_frames: int = 400) -> list[np.ndarray]:
    """The camera's frames during the first ``episodes`` deployed episodes of a recording
    (all its frames when it has no controller status), at most ``max_frames``."""
    from robot_rl.data.mcap_io import open_recording

    topic = T.camera_image_topic(camera)
    with open_recording(recording_path) as rec:
        if topic not in rec.channels:
            raise ValueError(f"{recording_path}: no {topic} channel; record the {camera} "
                             f"camera (recording.cameras: true)")
        windows = active_intervals(rec) if T.CONTROLLER_STATUS in rec.channels else []
        windows = windows[:episodes]
        frames = []
        for message in rec.messages([topic], decode=True):
            t = message.log_time_ns
            if windows and not any(a <= t <= b for a, b in windows):
                continue
            frames.append(_image_array(message.msg))
            if len(frames) >= max_frames:
                break
    return frames


def confusion_counts(predicted, actual) -> dict[str, int]:
    predicted, actual = np.asarray(predicted, bool), np.asarray(actual, bool)
    if predicted.shape != actual.shape:
        raise ValueError(f"{predicted.shape[0]} predictions for {actual.shape[0]} labels; "
                         f"expected one per frame")
    return {"true_positive": int((predicted & actual).sum()),
            "false_positive": int((predicted & ~actual).sum()),
            "false_negative": int((~predicted & actual).sum()),
            "true_negative": int((~predicted & ~actual).sum())}


def plot_confusion_matrix(counts: dict[str, int], path: str | os.PathLike,
                          title: str = "Reward classifier on deployed frames") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.array([[counts["true_positive"], counts["false_negative"]],
                     [counts["false_positive"], counts["true_negative"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=110)
    ax.imshow(grid, cmap="Blues")
    for (row, col), value in np.ndenumerate(grid):
        ax.text(col, row, str(value), ha="center", va="center",
                color="white" if value > grid.max() / 2 else "black")
    ax.set_xticks([0, 1], ["predicted success", "predicted failure"])
    ax.set_yticks([0, 1], ["success", "not success"])
    ax.set_ylabel("ground truth (simulator)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def classifier_confusion(recording_path: str | os.PathLike, classifier,
                         lift_height: float) -> dict[str, int]:
    """The success classifier on every recorded frame of its cameras, against the simulator's
    ground truth at the same stamp: the cube lifted ``lift_height`` and within 4 cm of the TCP
    (``PickTask.success``)."""
    import cv2

    from robot_rl.data.mcap_io import open_recording
    from robot_rl.envs.task import CUBE_HALF

    cams = [T.camera_image_topic(c) for c in classifier.cameras]
    poses = {T.OBJECT_POSE: {}, T.EE_POSE: {}}
    frames: dict[str, dict[int, np.ndarray]] = {c: {} for c in cams}
    height, width = classifier.image_shape[:2]
    with open_recording(recording_path) as rec:
        missing = [t for t in [*poses, *cams] if t not in rec.channels]
        if missing:
            raise ValueError(f"{recording_path}: no channel for {missing}; the confusion matrix "
                             f"needs the classifier's cameras and the sim's poses")
        for message in rec.messages([*poses, *cams], decode=True):
            if message.topic in poses:
                p = message.msg.pose.position
                poses[message.topic][message.publish_time_ns] = np.array([p.x, p.y, p.z])
            else:
                frame = _image_array(message.msg)
                if frame.shape[:2] != (height, width):
                    frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                frames[message.topic][message.publish_time_ns] = frame
    stamps = sorted(set.intersection(*(set(f) for f in frames.values()),
                                     set(poses[T.OBJECT_POSE]), set(poses[T.EE_POSE])))
    if not stamps:
        raise ValueError(f"{recording_path}: no frame has poses with the same stamp")
    predicted, actual = [], []
    for i in range(0, len(stamps), 256):
        batch = stamps[i:i + 256]
        images = {c: np.stack([frames[T.camera_image_topic(c)][s] for s in batch])
                  for c in classifier.cameras}
        predicted.extend(classifier.predict(images) >= classifier.threshold)
        for s in batch:
            cube, tcp = poses[T.OBJECT_POSE][s], poses[T.EE_POSE][s]
            actual.append(cube[2] - CUBE_HALF >= lift_height
                          and np.linalg.norm(cube - tcp) < 0.04)
    return confusion_counts(predicted, actual)
