"""The actor (robot_rl/learning/actor_core.py) when its robot restarts mid-episode: the episode
in flight is broken, its unsent steps are dropped (counted), and acting goes on with the next
episode. Driven on the real MuJoCo pick env; the restart is injected where RosRobotEnv raises
ClockJumpedBack (tests/ros/test_crash_safety.py does it with a killed simulator process, where
the kill may land between episodes)."""
from __future__ import annotations

import json
import logging

import gymnasium as gym

from robot_rl import transport
from robot_rl.config import load_config
from robot_rl.envs.pick_cube import PickCubeEnv
from robot_rl.learning.actor_core import ActorCore


class StreamLost(Exception):
    pass


class ClockJumped(StreamLost):
    pass


class RestartsOnce(gym.Wrapper):
    """The robot's clock goes back once: at ``step`` of the episode after ``episode`` resets."""

    def __init__(self, env, episode: int, step: int):
        super().__init__(env)
        self.at, self.resets, self.steps, self.clock_jumps = (episode, step), 0, 0, 0

    snapshot = property(lambda self: self.env.snapshot)  # what the actor reads besides obs
    task = property(lambda self: self.env.task)

    def reset(self, **kwargs):
        self.resets, self.steps = self.resets + 1, 0
        return self.env.reset(**kwargs)

    def step(self, action):
        if (self.resets - 1, self.steps) == self.at and not self.clock_jumps:
            self.clock_jumps += 1
            raise ClockJumped("stamps went back: the simulator restarted")
        self.steps += 1
        return self.env.step(action)


def test_a_restart_mid_episode_breaks_that_episode_drops_its_unsent_steps_and_acting_goes_on(tmp_path):
    cfg = load_config(None, {"task.observations": ["state"], "cameras": [], "tactile": [],
                             "agent.hidden_dims": [16], "agent.num_critics": 2,
                             "task.max_episode_steps": 6, "actor.send_every": 4,
                             "learner.run_dir": str(tmp_path / "run")})
    events, messages = [], []
    actor = ActorCore(cfg, messages.append, lambda text: None)

    def on_event(text):
        events.append(json.loads(text))
        if sum(e["event"] in ("success", "failure", "timeout") for e in events) >= 3:
            actor.stop.set()

    actor._send_event = on_event
    env = RestartsOnce(PickCubeEnv(cfg), episode=1, step=3)
    try:
        actor.run(env, StreamLost, ClockJumped, logging.getLogger("actor"))
    finally:
        env.close()
        actor.close()
    status = actor.status()
    ended = [(e["episode"], e["event"]) for e in events if e["event"] in ("success", "failure",
                                                                          "timeout")]
    broken = ended[1][0]
    assert ended[1][1] == "failure" and ended[2][0] == broken + 1  # acting went on
    assert (status["clock_jumps"], status["broken_episodes"], status["dropped_steps"]) == (1, 1, 3)
    spec = transport.obs_spec_of(actor.obs_space)
    steps = [s for data in messages for s in transport.decode_transitions(data, spec, actor.adim).steps]
    assert not [s for s in steps if s.episode == broken]  # 3 steps, none reached send_every
    assert status["steps"] == len(steps) + 3
