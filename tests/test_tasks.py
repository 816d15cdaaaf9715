"""The task seam: pick-cube unchanged bit for bit, tasks chosen by name, SERL's relative
frame, and clear refusals of bad task names and of simulator state where there is none."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.envs import task as task_module
from robot_rl.envs.task import PickCubeTask, Snapshot, Task, make_task, task_class
from robot_rl.robot.controller import matrix_to_quat_xyzw, quat_xyzw_to_matrix

REFERENCE = Path(__file__).parent / "fixtures" / "pick_cube_reference.npz"
CASES = {"default": {},
         "object_dense_yaw": {"task.observations": ["state", "object", "tactile"],
                              "task.reward": "dense", "task.action_space": "xyz_yaw_gripper"}}


def reference(case: str) -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(case + "/")}


def snapshot_at(ref: dict, i: int) -> Snapshot:
    tactile = {k[len("snap_tactile_"):]: ref[k][i] for k in ref if k.startswith("snap_tactile_")}
    return Snapshot(stamp=float(ref["snap_stamp"][i]), ee_pos=ref["snap_ee_pos"][i],
                    ee_quat=ref["snap_ee_quat"][i], ee_vel=ref["snap_ee_vel"][i],
                    gripper_width=float(ref["snap_gripper_width"][i]), tactile=tactile,
                    object_pos=ref["snap_object_pos"][i])


@pytest.mark.parametrize("case", sorted(CASES))
def test_pick_cube_task_reproduces_recorded_episodes_bit_for_bit(case):
    """The recorded snapshots, fed to today's task, give exactly the observations, commands
    and rewards the task gave before the seam was generalised (tests/fixtures)."""
    ref = reference(case)
    cfg = load_config(None, CASES[case])
    with PickCubeEnvFor(cfg) as env:
        home = env.world.ee_pose()[1]
    task = make_task(cfg, home)
    assert type(task) is PickCubeTask
    steps = len(ref["action"])
    episode = None
    for i in range(steps):
        if ref["episode"][i] != episode:
            episode = ref["episode"][i]
            task.reset()
        snap = snapshot_at(ref, i)
        obs = task.observe(snap)
        for key, value in obs.items():
            np.testing.assert_array_equal(value, ref[f"obs_{key}"][i].astype(value.dtype),
                                          err_msg=f"{case} step {i} {key}")
        target, quat, width = task.command(ref["action"][i], snap)
        np.testing.assert_array_equal(np.concatenate([target, quat, [width]]), ref["command"][i])
        last = i + 1 == steps or ref["episode"][i + 1] != episode
        if not last:
            assert task.reward(snapshot_at(ref, i + 1)) == ref["reward"][i], (case, i)
    assert ref["terminated"].sum() >= 1  # the reference episodes include successes


def test_pick_cube_env_reproduces_recorded_episodes():
    """End to end through SimTaskEnv (MuJoCo in the loop): same actions, same rewards and
    episode ends, observations equal to the recording."""
    from robot_rl.envs.pick_cube import PickCubeEnv, SimTaskEnv

    assert PickCubeEnv is SimTaskEnv
    for case, overrides in CASES.items():
        ref = reference(case)
        env = PickCubeEnv(load_config(None, overrides))
        try:
            i = 0
            for seed in dict.fromkeys(ref["episode"].astype(int).tolist()):
                obs, _ = env.reset(seed=seed)
                while True:
                    for key, value in obs.items():
                        np.testing.assert_allclose(value, ref[f"obs_{key}"][i], rtol=0, atol=1e-9,
                                                   err_msg=f"{case} step {i} {key}")
                    obs, reward, terminated, truncated, _ = env.step(ref["action"][i])
                    assert (reward, terminated, truncated) == (
                        ref["reward"][i], ref["terminated"][i], ref["truncated"][i]), (case, i)
                    i += 1
                    if terminated or truncated:
                        break
            assert i == len(ref["action"])
        finally:
            env.close()


class PickCubeEnvFor:
    """A SimTaskEnv as a context manager (closed on exit)."""

    def __init__(self, cfg):
        from robot_rl.envs.pick_cube import SimTaskEnv
        self.env = SimTaskEnv(cfg)

    def __enter__(self):
        return self.env

    def __exit__(self, *exc):
        self.env.close()


# -- relative frame (SERL) -----------------------------------------------------------------------
HOME_QUAT = np.array([1.0, 0.0, 0.0, 0.0])  # x, y, z, w: the Panda TCP at home points down


def rotz(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def snap_at(pos, rot, vel=(0.0, 0.0, 0.0), obj=None) -> Snapshot:
    return Snapshot(stamp=0.0, ee_pos=np.asarray(pos, float), ee_quat=matrix_to_quat_xyzw(rot),
                    ee_vel=np.array([*vel, 0.0, 0.0, 0.0]), gripper_width=0.08,
                    object_pos=None if obj is None else np.asarray(obj, float))


@pytest.fixture
def start_pose():
    """A start TCP pose away from home: offset, and turned 0.7 rad about the base z axis."""
    rot = rotz(0.7) @ quat_xyzw_to_matrix(HOME_QUAT)
    return np.array([0.52, 0.11, 0.27]), rot


def relative_task(**overrides):
    cfg = load_config(None, {"task.relative_frame": True, "tactile": [], **overrides})
    return make_task(cfg, HOME_QUAT)


def test_relative_frame_state_is_zero_at_the_start_pose(start_pose):
    pos, rot = start_pose
    task = relative_task(**{"task.observations": ["state", "object"]})
    start = snap_at(pos, rot, vel=(0.1, 0.0, 0.0), obj=pos + rot @ [0.0, 0.0, 0.05])
    task.reset(start)
    obs = task.observe(start)
    np.testing.assert_allclose(obs["state"][:3], 0.0, atol=1e-7)
    # velocity in start-frame coordinates: base +x is (cos, -sin, 0) rotated back
    np.testing.assert_allclose(obs["state"][3:6], rot.T @ [0.1, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(obs["object"], [0, 0, 0.05, 0, 0, 0.05], atol=1e-7)
    # later in the episode: the TCP moved 1, 2, 3 cm along the start frame's axes
    moved = snap_at(pos + rot @ [0.01, 0.02, 0.03], rot, obj=start.object_pos)
    np.testing.assert_allclose(task.observe(moved)["state"][:3], [0.01, 0.02, 0.03], atol=1e-7)


def test_relative_frame_action_x_moves_along_the_start_frames_x(start_pose):
    pos, rot = start_pose
    task = relative_task()
    task.reset(snap_at(pos, rot))
    later = snap_at(pos + [0.0, 0.0, 0.02], rot)   # the frame stays the start's, not the TCP's now
    target, quat, width = task.command(np.array([1.0, 0.0, 0.0, -1.0]), later)
    step = task.cfg.task.max_step_pos
    np.testing.assert_allclose(target - later.ee_pos, step * rot[:, 0], atol=1e-12)
    assert abs(rot[0, 0] - 1.0) > 0.2   # not along the base x: the test would catch a base-frame map
    target, _, _ = task.command(np.array([0.0, 0.0, -1.0, -1.0]), later)
    np.testing.assert_allclose(target - later.ee_pos, -step * rot[:, 2], atol=1e-12)
    np.testing.assert_allclose(quat_xyzw_to_matrix(quat), task.home_rot, atol=1e-12)


def test_relative_frame_is_taken_from_the_first_snapshot_after_a_bare_reset(start_pose):
    """Callers that reset without a snapshot (the ROS env, the controller) get the frame of the
    first snapshot the task sees in the episode, and a new one in the next episode."""
    pos, rot = start_pose
    task = relative_task()
    task.reset()
    np.testing.assert_allclose(task.observe(snap_at(pos, rot))["state"][:3], 0.0, atol=1e-7)
    np.testing.assert_allclose(task.observe(snap_at(pos + [0.1, 0, 0], rot))["state"][:3],
                               rot.T @ [0.1, 0, 0], atol=1e-7)
    task.reset()
    np.testing.assert_allclose(task.observe(snap_at(pos + [0.1, 0, 0], rot))["state"][:3], 0.0,
                               atol=1e-7)


def test_base_frame_is_the_default(start_pose):
    pos, rot = start_pose
    task = make_task(load_config(None, {"tactile": []}), HOME_QUAT)
    assert not task.relative_frame
    task.reset(snap_at(pos, rot))
    np.testing.assert_allclose(task.observe(snap_at(pos, rot))["state"][:3], pos, atol=1e-7)
    target, _, _ = task.command(np.array([1.0, 0.0, 0.0, -1.0]), snap_at(pos, rot))
    np.testing.assert_allclose(target - pos, [task.cfg.task.max_step_pos, 0, 0], atol=1e-12)


def test_relative_frame_in_the_mujoco_env_and_the_expert_still_picks():
    """In MuJoCo: the episode starts at state 0, an action +y moves the TCP along the start TCP
    frame's y (base -y at home: the TCP points down), and the scripted expert, which plans in
    the base frame, still lifts the cube through the task's frame."""
    from robot_rl.envs.pick_cube import SimTaskEnv

    env = SimTaskEnv(load_config(None, {"task.relative_frame": True,
                                        "task.observations": ["state"], "tactile": []}))
    try:
        obs, _ = env.reset(seed=0)
        np.testing.assert_allclose(obs["state"][:3], 0.0, atol=1e-9)
        start = env.snapshot
        start_rot = quat_xyzw_to_matrix(start.ee_quat)
        for _ in range(3):
            obs, *_ = env.step(np.array([0.0, 1.0, 0.0, -1.0]))
        moved = env.snapshot.ee_pos - start.ee_pos
        along = moved @ start_rot[:, 1]
        assert along > 0.03 and along > 0.9 * np.linalg.norm(moved), (moved, start_rot[:, 1])
        assert moved[1] < -0.03                      # base -y
        np.testing.assert_allclose(obs["state"][:3], start_rot.T @ moved, atol=1e-6)
        successes = 0
        for seed in (1, 2):
            env.reset(seed=seed)
            expert = env.task.expert(rng=np.random.default_rng(seed))
            for _ in range(env.task.max_episode_steps):
                _, _, terminated, truncated, info = env.step(expert.act(env.snapshot))
                if terminated or truncated:
                    break
            successes += info["success"]
        assert successes == 2
    finally:
        env.close()


def test_deployed_controller_observes_in_the_frame_of_its_engage_pose(start_pose):
    """The controller's core starts an episode when it leaves IDLE: the policy's first
    observation is at the origin of the relative frame, as in training."""
    from robot_rl.deploy.controller_core import ControllerCore

    pos, rot = start_pose
    cfg = load_config(None, {"task.relative_frame": True, "task.observations": ["state"],
                             "tactile": []})
    seen = []
    core = ControllerCore(cfg, lambda obs: seen.append(obs) or np.zeros(4), quat_home=HOME_QUAT)
    snap = snap_at(pos, rot)
    stamps = {s: 0.0 for s in core.sensors}
    core.step(snap, 0.0, stamps)
    core.engage()
    res = core.step(snap, 0.0, stamps)
    assert res.report.forwarded
    np.testing.assert_allclose(seen[-1]["state"][:3], 0.0, atol=1e-7)


# -- choosing tasks, and refusing bad ones --------------------------------------------------------
USER_TASK = "tests.fixtures.user_task:ReachTask"


def test_tasks_by_registered_name_and_by_module_path(monkeypatch):
    from tests.fixtures.user_task import ReachTask

    assert task_class("pick_cube") is PickCubeTask
    assert task_class(USER_TASK) is ReachTask
    task = make_task(load_config(None, {"task.name": USER_TASK}), HOME_QUAT)
    assert isinstance(task, ReachTask) and task.name == USER_TASK
    assert task.action_names == ["dx", "dy", "dz"] and "goal_offset" in task.observation_space.spaces
    monkeypatch.setitem(task_module.TASKS, "reach_by_name", ReachTask)
    assert task_class("reach_by_name") is ReachTask


def test_task_from_an_installed_entry_point(tmp_path, monkeypatch):
    """A package that declares ``[robot_rl.tasks] reach = ...`` makes ``task.name: reach``
    work without any import by the user (a distribution's metadata on sys.path)."""
    dist = tmp_path / "my_robot_tasks-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-robot-tasks\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[robot_rl.tasks]\nreach = {USER_TASK}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from tests.fixtures.user_task import ReachTask

    assert task_class("reach") is ReachTask
    assert make_task(load_config(None, {"task.name": "reach"}), HOME_QUAT).name == "reach"


@pytest.mark.parametrize("name, expected", [
    ("pick_cub", "unknown task.name 'pick_cub'; expected one of ['peg_insert', 'pick_cube']"),
    ("no_such_package.tasks:Reach", "cannot load 'Reach' from module 'no_such_package.tasks' "
                                    "(No module named 'no_such_package')"),
    ("tests.fixtures.user_task:Missing", "cannot load 'Missing' from module "
                                         "'tests.fixtures.user_task'"),
    ("tests.fixtures.user_task:NotATask", "not a subclass of robot_rl.envs.task.Task"),
])
def test_bad_task_names_are_refused_naming_what_was_expected(name, expected):
    from robot_rl.schema import ConfigError

    with pytest.raises(ConfigError) as err:   # the CLI prints it as a usage error, no traceback
        make_task(load_config(None, {"task.name": name}), HOME_QUAT)
    assert expected in str(err.value)


def test_simulator_state_is_refused_on_a_robot_and_in_rehearsal():
    pick_with_cube = {"task.observations": ["state", "object"]}
    with pytest.raises(ValueError, match=r"task.observations has 'object'.*driver.adapter is "
                                         r"'ros2_control'.*remove 'object'"):
        load_config(None, {**pick_with_cube, "driver.adapter": "ros2_control", "hil.reward.source": "human"})
    # a user task that reads the cube pose in code: refused when the task is built
    robot = load_config(None, {"task.name": "tests.fixtures.user_task:PeeksAtTheCube",
                               "driver.adapter": "ros2_control", "hil.reward.source": "human"})
    with pytest.raises(ValueError, match=r"reads simulator-only state \['object_pos'\].*"
                                         r"driver.adapter is 'ros2_control'"):
        make_task(robot, HOME_QUAT)
    rehearsal = load_config(None, pick_with_cube)
    rehearsal.sim.rehearsal = True   # sim.rehearsal (the hardware dress rehearsal)
    with pytest.raises(ValueError, match=r"\['object_pos'\] \(the 'object' group of "
                                         r"task.observations: remove it\).*sim.rehearsal is true"):
        make_task(rehearsal, HOME_QUAT)
    # where the simulator provides it, and for offline use of the spaces, it is fine
    assert make_task(load_config(None, pick_with_cube), HOME_QUAT).privileged == {"object_pos"}
    assert make_task(rehearsal, HOME_QUAT, check_graph=False).privileged == {"object_pos"}
    assert not make_task(load_config(None, {"driver.adapter": "ros2_control", "hil.reward.source": "human",
                                            "hil.reset.mode": "move_then_human"}),
                         HOME_QUAT).privileged


def test_reset_strategy_is_checked_against_the_reset_node():
    robot = {"driver.adapter": "ros2_control", "hil.reward.source": "human"}
    with pytest.warns(UserWarning, match=r"reset_strategy 'move_then_human', but hil.reset.mode "
                                         r"is 'move'"):
        make_task(load_config(None, {**robot, "hil.reset.mode": "move"}), HOME_QUAT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_task(load_config(None, {**robot, "hil.reset.mode": "move_then_human"}), HOME_QUAT)
        make_task(load_config(None, {**robot, "task.name": USER_TASK}), HOME_QUAT)  # reach: move
        make_task(load_config(None, {"hil.reset.mode": "move"}), HOME_QUAT)  # the sim teleports


def test_a_task_with_an_unknown_reset_strategy_is_refused(monkeypatch):
    class BadReset(PickCubeTask):
        reset_strategy = "teleport_on_a_robot"

    monkeypatch.setitem(task_module.TASKS, "bad_reset", BadReset)
    with pytest.raises(ValueError, match=r"reset_strategy 'teleport_on_a_robot' is not one of "
                                         r"\['move', 'human', 'move_then_human'\]"):
        make_task(load_config(None, {"task.name": "bad_reset"}), HOME_QUAT)


def test_a_task_without_an_expert_says_so():
    class Plain(Task):
        def success(self, snap):
            return False

    assert Plain(load_config(None, {}), HOME_QUAT).expert() is None
    assert PickCubeTask(load_config(None, {}), HOME_QUAT).expert() is not None


# -- the task in a model's metadata ---------------------------------------------------------------
def test_metadata_records_the_task_and_reads_files_written_before_it(tmp_path):
    from robot_rl.deploy.agent_export import build_metadata, robot_spec
    from robot_rl.deploy.errors import MetadataError
    from robot_rl.deploy.metadata import PolicyMetadata

    cfg = load_config(None, {"task.relative_frame": True})
    meta = build_metadata(cfg, "run-1")
    assert (meta.task_name, meta.task_relative_frame) == ("pick_cube", True)
    path = meta.save(tmp_path / "policy.json")
    assert PolicyMetadata.load(path) == meta
    meta.check_against(robot_spec(cfg))

    legacy = meta.to_dict()
    del legacy["task"]   # a file exported before tasks were recorded: pick_cube, base frame
    old = PolicyMetadata.from_dict(legacy)
    assert (old.task_name, old.task_relative_frame) == ("pick_cube", False)
    old.check_against(robot_spec(load_config(None, {})))

    for task, problem in (({"name": 3, "relative_frame": False}, "field 'name' must be a string"),
                          ({"name": "pick_cube", "relative_frame": "yes"},
                           "field 'relative_frame' must be bool"),
                          ({"relative_frame": False}, "missing required field 'name'"),
                          ("pick_cube", "field 'task' must be an object")):
        with pytest.raises(MetadataError, match=problem):
            PolicyMetadata.from_dict({**legacy, "task": task}, source="policy.json")


def test_a_device_command_becomes_the_relative_action_that_moves_the_same_way(start_pose):
    """The intervention node publishes base-frame axes; converted by the task they move the
    TCP the way the person pushed, and are stored in the policy's (start) frame."""
    pos, rot = start_pose
    task = relative_task()
    start = snap_at(pos, rot)
    task.reset(start)
    pushed = np.array([0.6, 0.0, 0.0, -1.0], np.float32)     # base +x
    action = task.action_from_base_frame(pushed, start)
    np.testing.assert_allclose(action[:3], rot.T @ [0.6, 0.0, 0.0], atol=1e-6)
    assert action[3] == -1.0
    target, _, _ = task.command(action, start)
    np.testing.assert_allclose(target - pos, [0.6 * task.cfg.task.max_step_pos, 0, 0], atol=1e-7)
    base = make_task(load_config(None, {"tactile": []}), HOME_QUAT)
    np.testing.assert_array_equal(base.action_from_base_frame(pushed, start), pushed)


def test_the_live_view_names_the_configured_task(tmp_path):
    import rerun as rr

    from robot_rl.view import LiveView, RobotModel
    from tests.test_view_model import logged

    cfg = load_config(None, {"task.name": USER_TASK})
    path = tmp_path / "view.rrd"
    rec = rr.RecordingStream("robot_rl_test", recording_id="tasks")
    rec.save(str(path))
    view = LiveView(cfg, recording=rec, robot=RobotModel(cfg.robot.urdf))
    view.log_static()
    view.intervention(1.0, True)
    rec.flush()
    rec.disconnect()
    text = logged(path)["/status"][-1][1]["TextDocument:text"]
    assert f"task:** {USER_TASK}" in (text[0] if isinstance(text, list) else text)


def test_a_task_that_builds_no_spaces_is_refused(monkeypatch):
    class NoSpaces(Task):
        def __init__(self, cfg, home_quat):   # forgot super().__init__
            self.cfg = cfg

    monkeypatch.setitem(task_module.TASKS, "no_spaces", NoSpaces)
    with pytest.raises(ValueError, match=r"NoSpaces must set action_space \(a gymnasium Box\) "
                                         r"and observation_space \(a gymnasium Dict\)"):
        make_task(load_config(None, {"task.name": "no_spaces"}), HOME_QUAT)


def test_dataset_import_and_export_metadata_take_the_configured_task():
    """Offline users of the task's spaces (LeRobot import, export metadata) build the
    configured task, and do so without a graph's privileges."""
    from robot_rl.data.lerobot import expected_spec
    from robot_rl.deploy.agent_export import task_spaces

    reach = load_config(None, {"task.name": USER_TASK, "task.observations": ["state"]})
    spec, action_dim, names = expected_spec(reach)
    assert set(spec) == {"state", "goal_offset"} and action_dim == 3 and names == ["dx", "dy", "dz"]
    rehearsal = load_config(None, {"task.observations": ["state", "object"]})
    rehearsal.sim.rehearsal = True
    obs_space, _, _ = task_spaces(rehearsal)
    assert "object" in obs_space.spaces
