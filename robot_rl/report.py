"""Run report: episode log (CSV), PNG plots and a Markdown summary. ROS-free."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

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
