"""Evaluation rounds on the robot, and the best policy they found (ROS-free).

A policy trained online does not get better monotonically: the deployed success of the same
rehearsal command varied 0.58-0.82 between runs, and the final weights are one sample of a
noisy process. What a robot can tell, without any simulator state, is how the policy does when
it acts alone. So every ``actor.evaluate_every`` env steps the actor runs a round of
``actor.evaluate_episodes`` episodes with the mean action and the weights frozen for the round
(one weights version judged). An episode counts as a success when the task's reward source
(the classifier, a human label, a topic: whatever ends training episodes) says success and
nobody intervened: a person who had to step in judged it a failure. The round's transitions are
training data like any other.

A round at least as good as every earlier one (ties go to the later round: it trained longer)
saves the actor weights it judged, ``actor.safetensors`` with ``best.json``, in the actor's
``best_policy`` folder; every round is appended to ``rounds.jsonl`` there. ``robot-rl export
--best`` and the demo's export stage deploy that policy (:func:`load_best_policy`).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

BEST_WEIGHTS, BEST_INFO, ROUNDS_LOG = "actor.safetensors", "best.json", "rounds.jsonl"


@dataclass
class RoundResult:
    round: int
    weights_version: int
    started_at_step: int      # the actor's env steps when the round began
    episodes: int
    successes: int

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "success_rate": self.success_rate}


class EvaluationRounds:
    """When rounds are due, what a round scored, and the best round's weights on disk."""

    def __init__(self, every: int, episodes: int, directory: str | os.PathLike):
        self.every, self.episodes = int(every), int(episodes)
        self.dir = Path(directory)
        self.best = read_best(self.dir)          # a restarted actor keeps the bar it set
        self.round = self.best["round"] + 1 if self.best else 0
        self.next_at = self.every
        self.current: Optional[RoundResult] = None

    @property
    def active(self) -> bool:
        return self.current is not None

    def due(self, env_steps: int) -> bool:
        """A round should start with the next episode."""
        return self.every > 0 and self.current is None and env_steps >= self.next_at

    def start(self, weights_version: int, env_steps: int) -> None:
        self.current = RoundResult(self.round, weights_version, env_steps, 0, 0)
        self.next_at = env_steps + self.every

    def episode_ended(self, success: bool, interventions: int) -> Optional[RoundResult]:
        """Count one evaluation episode; the round's result once it is complete."""
        result = self.current
        if result is None:
            return None
        result.episodes += 1
        result.successes += int(bool(success) and interventions == 0)
        if result.episodes < self.episodes:
            return None
        self.current = None
        self.round += 1
        return result

    def keep(self, result: RoundResult, actor_state: Dict) -> bool:
        """Log the round; save ``actor_state`` (the weights it judged, ``{group: {name: tensor}}``
        as ``RLPDAgent.actor_state_dict`` gives it) if it is the best so far."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ROUNDS_LOG, "a") as log:
            log.write(json.dumps(result.as_dict()) + "\n")
        if self.best is not None and result.success_rate < self.best["success_rate"]:
            return False
        from safetensors.torch import save_file
        tensors = {f"{group}/{name}": value.detach().cpu().contiguous()
                   for group, values in actor_state.items() for name, value in values.items()}
        # weights first, then the record naming them: a crash between leaves the old record
        # pointing at new weights of a round at least as good, never a record without weights
        _atomic(self.dir / BEST_WEIGHTS, lambda path: save_file(tensors, str(path)))
        _atomic(self.dir / BEST_INFO, lambda path: Path(path).write_text(
            json.dumps(result.as_dict(), indent=1)))
        self.best = result.as_dict()
        return True


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def read_best(directory: str | os.PathLike) -> Optional[dict]:
    path = Path(directory) / BEST_INFO
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        float(info["success_rate"]), int(info["round"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a best-policy record ({exc}); expected the JSON "
                         f"written by an actor's evaluation round") from None
    return info


def best_policy_dirs(run_dir: str | os.PathLike) -> list[Path]:
    """Every actor's ``best_policy`` folder under a learner run directory."""
    return sorted(Path(run_dir).glob("actors/actor_*/best_policy"))


def read_rounds(run_dir: str | os.PathLike) -> list[dict]:
    """Every logged round of every actor of a learner run, in each actor's order."""
    rounds = []
    for folder in best_policy_dirs(run_dir):
        log = folder / ROUNDS_LOG
        if log.exists():
            rounds += [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return rounds


def load_best_policy(run_dir: str | os.PathLike) -> Optional[Tuple[Dict, dict]]:
    """``(actor state dict, its round record)`` of the best round of any actor of the run
    (ties: the later round), or None when no round was run."""
    found = [(info, d) for d in best_policy_dirs(run_dir) if (info := read_best(d))]
    if not found:
        return None
    info, folder = max(found, key=lambda f: (f[0]["success_rate"], f[0]["started_at_step"]))
    weights = folder / BEST_WEIGHTS
    if not weights.exists():
        raise FileNotFoundError(f"{folder / BEST_INFO} names weights {weights} that are missing")
    from safetensors.torch import load_file
    state: Dict[str, Dict] = {}
    for key, value in load_file(str(weights)).items():
        group, _, name = key.partition("/")
        state.setdefault(group, {})[name] = value
    return state, {**info, "folder": str(folder)}
