"""The ROS-free parts of teleoperated demonstration recording, the rehearsal's config refusals
and the graphs it starts."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.config import load_config
from robot_rl.graph import graph
from robot_rl.learning.demos import record_episodes
from robot_rl.learning.record_demos import episode_outcome, human_command, teleop_action
from robot_rl.learning.replay import ReplayBuffer
from robot_rl.schema import ConfigError



class LineReach(gym.Env):
    """1-D point: reach x >= 0.9 from x = 0 within 20 steps."""
    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return np.array([self.x], np.float32), {}

    def step(self, a):
        self.x, self.t = min(1.0, self.x + 0.2 * float(a[0])), self.t + 1
        success = self.x >= 0.9
        return (np.array([self.x], np.float32), float(success), success, self.t >= 20,
                {"is_success": success})


def right(obs):
    return np.array([1.0], np.float32)


def dawdle(obs):
    return np.array([0.01], np.float32)


def test_human_command_decodes_the_intervention_contract():
    cmd = human_command([0.5, -2.0, 0.0, 1.0], [1, 0, 1, 0], 4, received=3.0)
    np.testing.assert_allclose(cmd.action, [0.5, -1.0, 0.0, 1.0])  # clipped to [-1, 1]
    assert cmd.active and cmd.success and not cmd.failure and cmd.received == 3.0
    short = human_command([0, 0, 0, 0], [1], 4, 0.0)  # a device with one button
    assert short.active and not short.success and not short.failure
    with pytest.raises(ValueError, match="expected 4 finite values"):
        human_command([0.0, float("nan"), 0.0, 0.0], [1], 4, 0.0)
    with pytest.raises(ValueError, match="expected 5 finite values"):
        human_command([0.0] * 4, [1], 5, 0.0)


def test_teleop_action_moves_only_while_the_dead_man_is_held_and_fresh():
    held = human_command([0.3, 0.2, 0.1, 1.0], [1], 4, received=10.0)
    action, intervened = teleop_action(held, 10.1, 0.5, 4)
    np.testing.assert_allclose(action, [0.3, 0.2, 0.1, 1.0], rtol=1e-6) and intervened
    for cmd, now in ((held, 10.6), (human_command([0.3, 0, 0, 1], [0], 4, 10.0), 10.1),
                     (None, 0.0)):
        action, intervened = teleop_action(cmd, now, 0.5, 4)
        assert not intervened and not np.any(action)  # hold still, keep the gripper


def test_episode_outcome():
    go = human_command([0.0] * 4, [1, 0, 0, 0], 4, 0.0)
    assert episode_outcome(go, False) is None
    assert episode_outcome(go, True) == "success"  # the task's reward source
    assert episode_outcome(human_command([0.0] * 4, [1, 0, 1, 0], 4, 0.0), False) == "success"
    assert episode_outcome(human_command([0.0] * 4, [1, 0, 0, 1], 4, 0.0), False) == "discard"
    assert episode_outcome(None, False) is None
    assert episode_outcome(go, False, env_failure=True) == "discard"  # the reward source's
    # hil.reward.source human: the button is the source; its hold rule decides (env_success)
    held = human_command([0.0] * 4, [1, 0, 1, 0], 4, 0.0)
    assert episode_outcome(held, False, success_button=False) is None
    assert episode_outcome(held, True, success_button=False) == "success"


def test_unsuccessful_episodes_go_to_rejected_out(tmp_path):
    policies = iter([dawdle, right, dawdle])

    def run_episode(env, policy, seed):  # a recorder's own episode loop
        act, (obs, _) = next(policies), env.reset(seed=seed)
        episode, done = [], False
        while not done:
            action = np.asarray(act(obs), np.float32)
            nxt, r, term, trunc, info = env.step(action)
            episode.append((obs, action, r, nxt, term, trunc))
            obs, done = nxt, term or trunc
        return episode, bool(info["is_success"])

    out, rejected = str(tmp_path / "demos"), str(tmp_path / "demos.rejected")
    with pytest.raises(RuntimeError, match=r"only 1/2 .* 2 unsuccessful episode\(s\) are kept"):
        record_episodes(LineReach(), dawdle, 2, out=out, max_attempts=3,
                        run_episode=run_episode, rejected_out=rejected)
    assert len(ReplayBuffer.load(rejected, resume=False, verbose=False)) == 40  # 2 x 20 steps
    assert ReplayBuffer.load(out, resume=False, verbose=False).reward.sum() == 1.0
    with pytest.raises(FileExistsError, match="rejected"):
        record_episodes(LineReach(), right, 1, out=str(tmp_path / "new"), rejected_out=rejected)


def _rehearsal() -> dict:
    # A reward source that needs no simulator state where the tree has one ("topic").
    import typing

    from robot_rl.hil.config import RewardConfig
    sources = typing.get_args(typing.get_type_hints(RewardConfig)["source"])
    return {"sim.rehearsal": True, "hil.device": "joy", "hil.reset.mode": "move_then_human",
            **({"hil.reward.source": "topic"} if "topic" in sources else {})}


def test_rehearsal_refusals_name_the_keys():
    rehearsal = _rehearsal()
    cfg = load_config(None, rehearsal)
    assert cfg.sim.rehearsal and cfg.sim.operator == "correct"
    with pytest.raises(ConfigError, match="sim.rehearsal is true but hil.device is 'sim_human'"
                                          ".*set hil.device to joy"):
        load_config(None, {**rehearsal, "hil.device": "sim_human"})
    with pytest.raises(ConfigError, match="hil.reset.mode is 'move'.*move_then_human"):
        load_config(None, {**rehearsal, "hil.reset.mode": "move"})
    with pytest.raises(ConfigError, match="driver.adapter is 'ros2_control'"):
        load_config(None, {**rehearsal, "driver.adapter": "ros2_control"})
    with pytest.raises(ConfigError, match="operator"):
        load_config(None, {**rehearsal, "sim.operator": "teach"})


def test_rehearsal_graphs_have_the_reset_node_and_no_sim_reset():
    cfg = load_config(None, _rehearsal())
    names = [n.name for n in graph(cfg, "c.yaml", "train")]
    assert {"mujoco_sim", "learner", "actor_0", "intervention", "reset"} <= set(names)
    assert [n.name for n in graph(cfg, "c.yaml", "demos")] == ["mujoco_sim", "intervention",
                                                                "reset"]
    plain = load_config(None, {"hil.device": "joy"})
    assert "reset" not in [n.name for n in graph(plain, "c.yaml", "train")]
    assert [n.name for n in graph(plain, "c.yaml", "demos")] == ["mujoco_sim", "intervention"]
    with pytest.raises(ConfigError, match="demos profile records a person's device"):
        graph(load_config(None, {"hil.device": "none"}), "c.yaml", "demos")


def test_cli_refuses_an_unknown_device(capsys):
    from robot_rl.cli import main
    with pytest.raises(SystemExit):
        main(["record-demos", "--out", "x", "--device", "trackball"])
    assert "invalid choice: 'trackball'" in capsys.readouterr().err
