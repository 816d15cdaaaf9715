"""ROS-free Gymnasium environment over the in-process MuJoCo stand-in.

Runs the configured task (``task.name``, :func:`robot_rl.envs.task.make_task`) with the same
observations and actions as the ROS 2 facade (``ros_env.RosRobotEnv``), without DDS in
between: for fast tests, algorithm work and benchmarks. ``SimTaskEnv`` is task-agnostic; the
name ``PickCubeEnv`` (the default task's) stays as an alias.
"""
from __future__ import annotations

import gymnasium as gym

from robot_rl.config import Config
from robot_rl.envs.task import Snapshot, make_task
from robot_rl.sim.randomization import CommandDelay, ObservationChannel
from robot_rl.sim.world import SimWorld


def snapshot_from_world(world: SimWorld, cfg: Config, images: bool) -> Snapshot:
    pos, quat = world.ee_pose()
    snap = Snapshot(stamp=world.time, ee_pos=pos, ee_quat=quat, ee_vel=world.ee_velocity(),
                    gripper_width=world.gripper_width(), object_pos=world.object_pose()[0])
    for name in world.fixture_names:
        snap.fixtures[name] = world.fixture_pose(name)
    for t in cfg.tactile:
        snap.tactile[t.name] = world.tactile(t.name)
    if images:
        for cam in cfg.cameras:
            snap.images[cam.name] = world.camera_frame(cam)[0]
    return snap


class SimTaskEnv(gym.Env):
    """The configured task on the in-process MuJoCo world: reward and success from the
    task's simulator-state test, episodes end on ``task.terminated`` or are truncated after
    ``task.max_episode_steps``.

    With ``sim.randomization`` (docs/sim_to_real.md) the policy sees the snapshots through the
    episode's ``ObservationChannel`` (latency, noise, tactile gain) and its actions take effect
    through a ``CommandDelay``; reward and success are judged on the true state. ``info`` of
    ``reset`` carries the episode's values under ``"randomization"``; ``reset(options={"replay":
    record})`` starts the logged episode ``record`` again (its values and cube pose)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, cfg: Config | None = None, render_mode: str | None = None):
        self.cfg = cfg or Config()
        self.world = SimWorld(self.cfg)
        self.task = make_task(self.cfg, self.world.ee_pose()[1])
        self.action_space = self.task.action_space
        self.observation_space = self.task.observation_space
        self.render_mode = render_mode
        self._images = "images" in self.cfg.task.observations
        self._steps = 0
        self._snap: Snapshot | None = None
        self._seen: Snapshot | None = None   # what the policy observes of self._snap
        self._channel: ObservationChannel | None = None
        self._delay: CommandDelay | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        replay = (options or {}).get("replay")
        if replay is not None:  # a line of sim.randomization.log_file: that episode again
            self.world.replay(replay)
        else:
            self.world.reset(seed=seed)
        self._steps = 0
        self._snap = snapshot_from_world(self.world, self.cfg, self._images)
        values = self.world.episode_randomization
        self._channel = ObservationChannel(values) if values is not None else None
        self._delay = CommandDelay(values) if values is not None else None
        self._seen = self._observed(self._snap)
        self.task.reset(self._seen, self.np_random)
        info = {"success": False}
        if values is not None:
            info["randomization"] = values
        return self.task.observe(self._seen), info

    def step(self, action):
        if self._snap is None:
            raise RuntimeError("call reset() before step()")
        command = self.task.command(action, self._seen)
        if self._delay is not None:
            command = self._delay.push(command) or (None, None, None)
        self.advance(*command)
        self._seen = self._observed(self._snap)
        self._steps += 1
        success = self.task.success(self._snap)
        terminated = self.task.terminated(self._snap, success)
        truncated = not terminated and self._steps >= self.task.max_episode_steps
        return (self.task.observe(self._seen), self.task.reward(self._snap), terminated,
                truncated, {"success": success})

    def _observed(self, snap: Snapshot) -> Snapshot:
        return snap if self._channel is None else self._channel.observe(snap)

    def advance(self, target=None, quat=None, width: float | None = None) -> Snapshot:
        """Command a TCP target (position, orientation x, y, z, w) and gripper opening, run one
        control period and return the new snapshot. ``step`` is this after the task's action
        mapping; a controller that maps actions itself (the deployed controller's evaluation)
        calls it directly. ``None`` keeps the previous target / opening."""
        if target is not None:
            self.world.controller.set_cartesian_target(target, quat)
        if width is not None:
            self.world.set_gripper(width)
        self.world.step_physics()
        self._snap = snapshot_from_world(self.world, self.cfg, self._images)
        return self._snap

    @property
    def snapshot(self) -> Snapshot | None:
        """The robot contract at the last reset/step (what a watcher such as the sim human sees)."""
        return self._snap

    def render(self):
        cam = self.cfg.cameras[0]
        return self.world.render(cam.name, cam.width, cam.height)

    def close(self):
        self.world.close()


PickCubeEnv = SimTaskEnv  # the name before tasks were configurable; runs task.name like SimTaskEnv
