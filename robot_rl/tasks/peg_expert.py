"""Scripted expert for ``peg_insert``: the source of its simulated demonstrations.

It knows the TCP, the fingertip taxels, the task's coarse hole estimate (not the true hole),
and, from simulator state like the pick expert's cube, where the peg sits in the hand (it
creeps when pressed). Approach above the estimate and descend; when the peg is blocked (the
taxels' pattern departs from the grasp's, or the peg's tip stops sinking near the top), peck
search: lift the tip clear of the lead-in, move the peg over the next point of a spiral around
the estimate, press down with no sideways spring so the lead-in can steer it in; once the tip
is below the block's top, push it home.
"""
from __future__ import annotations

import numpy as np

from robot_rl.envs.task import Snapshot

# Probe points this far apart: the arm's compliance lets the peg in from ~1 mm off the hole's
# centre (0.5 mm of clearance per side).
PROBE_SPACING = 0.0015
ARRIVED = 0.0004        # m of the TCP from a probe point before pressing
MAX_MOVE_STEPS = 4
PRESS_STEPS = 2
PRESS = 0.004           # m below the top the TCP is sent to when probing: ~3 N at 800 N/m
LIFT = 0.001            # m of the tip above the lead-in's ridges between probes
TOUCH_CHANGE = 1.5      # N of taxel change (summed over both pads) that means contact
HOVER = 0.004           # m of the tip above the lead-in's ridges before descending


class PegInsertExpert:
    def __init__(self, task, noise: float = 0.0, rng: np.random.Generator | None = None):
        self.task = task
        self.noise = noise
        self.rng = rng or np.random.default_rng()
        self.reset()

    def reset(self) -> None:
        self.phase = "approach"
        self.baseline: dict[str, np.ndarray] | None = None
        self.angle = 0.0
        self.last_tip: float | None = None
        self.probe = 0
        self.step_in_probe = 0
        self.pressing = 0

    @staticmethod
    def _probe(k: int) -> np.ndarray:
        """The k-th probe offset from the estimate: a sunflower spiral, nearest first, about
        PROBE_SPACING apart."""
        radius = PROBE_SPACING * np.sqrt(k / np.pi) * 1.05
        angle = k * 2.399963
        return radius * np.array([np.cos(angle), np.sin(angle)])

    def _touch_change(self, snap: Snapshot) -> float:
        if not snap.tactile:
            return 0.0
        if self.baseline is None:
            self.baseline = {k: np.asarray(v, float).copy() for k, v in snap.tactile.items()}
            return 0.0
        return float(sum(np.abs(np.asarray(v, float) - self.baseline[k]).sum()
                         for k, v in snap.tactile.items()))

    def act(self, snap: Snapshot) -> np.ndarray:
        task, p = self.task, self.task.params
        tcp = np.asarray(snap.ee_pos, float)
        if snap.object_pos is None:
            raise ValueError("the peg expert needs the peg's position (simulator state)")
        # Where the peg is (it creeps in the grasp when pressed): its centre and tip.
        peg = np.asarray(snap.object_pos, float)
        tip_z = peg[2] - p.peg_half_length
        estimate = task.hole_estimate(snap)
        touched = self._touch_change(snap) > TOUCH_CHANGE
        if self.phase != "insert" and tip_z < estimate[2] - 0.0015:
            self.phase = "insert"   # the tip is below the top: it is in the hole

        def move_peg(xy, tip_height):
            """The TCP goal that puts the peg's xy and tip height there."""
            return tcp + np.array([xy[0] - peg[0], xy[1] - peg[1],
                                   estimate[2] + tip_height - tip_z])

        if self.phase == "approach":
            goal = move_peg(estimate[:2], p.chamfer + HOVER)
            if np.linalg.norm(goal - tcp) < 0.0015:
                self.phase = "descend"
        if self.phase == "descend":
            goal = move_peg(estimate[:2], tip_z - estimate[2] - 0.005)
            if tip_z < estimate[2] + p.chamfer + 0.0005:
                goal[:2] = tcp[:2]   # on the lead-in: let its slope steer the peg
            blocked = self.last_tip is not None and tip_z > self.last_tip - 0.0005
            near_top = tip_z < estimate[2] + p.chamfer + 0.002
            if near_top and (touched or blocked):
                self.phase = "search"
        self.last_tip = tip_z
        if self.phase == "search":
            # Peck: lift the tip just clear of the lead-in, move the peg over the next probe
            # point until it is there (the compliant arm lags), then press down for a while
            # with no sideways spring, so the lead-in's slope can steer it in.
            point = estimate[:2] + self._probe(self.probe)
            arrived = np.linalg.norm(peg[:2] - point) < ARRIVED
            moving = self.step_in_probe < MAX_MOVE_STEPS and not (arrived and self.step_in_probe)
            if moving and not self.pressing:
                goal = move_peg(point, p.chamfer + LIFT)
                self.step_in_probe += 1
            else:
                self.pressing += 1
                goal = move_peg(point, -PRESS)
                goal[:2] = tcp[:2]
                if self.pressing >= PRESS_STEPS:
                    self.step_in_probe = self.pressing = 0
                    self.probe += 1
        if self.phase == "insert":
            goal = np.array([tcp[0], tcp[1], tcp[2] - 0.01])
        step = np.clip(task.vector_to_task_frame((goal - tcp) / task.task.max_step_pos, snap),
                       -1.0, 1.0)
        if self.noise:
            step = np.clip(step + self.rng.normal(0.0, self.noise, 3), -1.0, 1.0)
        return step.astype(np.float32)
