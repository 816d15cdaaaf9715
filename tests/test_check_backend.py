"""The verdicts of ``robot-rl check-backend`` on synthetic samples (no ROS graph needed)."""
import numpy as np
import pytest

from robot_rl import check_backend as cb
from robot_rl.config import load_config
from robot_rl.robot.controller import ImpedanceController
from robot_rl.robot.kinematics import ArmKinematics


def samples(stamps, wall=None, latency=()):
    return cb.Samples(list(stamps), list(stamps if wall is None else wall), list(latency))


def test_contract_follows_the_configuration():
    sim = cb.contract(load_config(None))
    topics = {s.topic: s for s in sim.streams}
    assert topics["/joint_states"].rate_hz == 10.0
    assert "/camera/front/image_raw" in topics and "/tactile/left/image" in topics
    assert "/clock" in topics and not topics["/clock"].sensor
    real = cb.contract(load_config(None, {
        "driver.adapter": "ros2_control", "hil.reward.source": "human",
        "driver.publish_rate_hz": 200.0,
        "cameras": [{"name": "front", "backend": "realsense", "fps": 30}], "tactile": []}))
    topics = {s.topic: s for s in real.streams}
    assert topics["/joint_states"].rate_hz == 200.0
    assert topics["/camera/front/image_raw"].rate_hz == 30
    assert "/clock" not in topics and "/tactile/left/image" not in topics
    # A sim camera slower than the control rate is rendered every round(control / fps) periods.
    slow = cb.contract(load_config(None, {"cameras": [{"name": "front", "fps": 5}]}))
    assert {s.topic: s.rate_hz for s in slow.streams}["/camera/front/image_raw"] == 5.0


def test_presence_needs_the_right_type_and_a_peer():
    spec = cb.contract(load_config(None, {"cameras": [], "tactile": []}))
    published = {s.topic: [s.type] for s in spec.streams}
    published["/robot/status"] = [cb.STRING]
    subscribed = dict((k, [v]) for k, v in spec.commands.items())
    assert not any(r.failed for r in cb.check_presence(spec, published, subscribed))
    published["/robot/ee_pose"] = ["geometry_msgs/msg/Pose"]          # wrong type
    del published["/clock"]                                          # withdrawn
    del subscribed["/robot/joint_target"]                            # nobody listens
    failed = {r.subject: r for r in cb.check_presence(spec, published, subscribed) if r.failed}
    assert set(failed) == {"/robot/ee_pose", "/clock", "/robot/joint_target"}
    assert failed["/clock"].measured == "no publisher"
    assert failed["/robot/joint_target"].measured == "no subscriber"


def test_rate_on_the_backend_clock_and_wall_clock():
    stream = cb.Stream("/joint_states", cb.JOINT_STATE, 100.0)
    stamps = np.arange(300) * 0.01
    assert cb.check_rate(stream, samples(stamps), 0.2, wall_time=True).status == cb.PASS
    # Half the configured rate fails.
    assert cb.check_rate(stream, samples(stamps * 2), 0.2, wall_time=True).failed
    # Sim time at 100 Hz received at 20 Hz wall (a lockstep sim): fine in sim time only.
    slow_wall = stamps * 5
    assert cb.check_rate(stream, samples(stamps, slow_wall), 0.2, wall_time=False).status == cb.PASS
    assert cb.check_rate(stream, samples(stamps, slow_wall), 0.2, wall_time=True).failed
    backwards = stamps.copy()
    backwards[100] = 0.0
    result = cb.check_rate(stream, samples(backwards), 0.2, wall_time=True)
    assert result.failed and "backwards" in result.measured
    assert cb.check_rate(stream, samples(stamps[:2]), 0.2, wall_time=True).failed


def test_alignment_catches_a_stream_on_another_clock():
    spec = cb.contract(load_config(None, {"cameras": [{"name": "front"}], "tactile": []}))
    joints = np.arange(100) * 0.1 + 1000.0
    data = {s.topic: samples(joints) for s in spec.streams}
    assert not any(r.failed for r in cb.check_alignment(spec, data, "/joint_states"))
    # A camera stamped with its device clock (seconds off) is caught.
    data["/camera/front/image_raw"] = samples(joints - 3.2, joints)
    failed = [r.subject for r in cb.check_alignment(spec, data, "/joint_states") if r.failed]
    assert failed == ["/camera/front/image_raw"]
    # A 30 Hz camera against 100 Hz joints on the same clock, received with some latency.
    joints = np.arange(1000) * 0.01
    camera = np.arange(300) / 30.0
    data = {"/joint_states": samples(joints, joints + 0.001),
            "/camera/front/image_raw": samples(camera, camera + 0.004),
            "/camera/front/camera_info": samples(camera, camera + 0.004)}
    offsets = cb.paired_offsets(data["/camera/front/image_raw"], data["/joint_states"])
    assert offsets.max() <= 0.01
    assert not any(r.failed for r in cb.check_alignment(spec, data, "/joint_states"))


def test_clock_sim_time_and_wall_time():
    sim = cb.contract(load_config(None, {"cameras": [], "tactile": []}))
    stamps = np.arange(50) * 0.1
    wall = 1.7e9 + np.arange(50) * 0.5
    clock = samples(stamps, wall - 0.001)
    joints = {"/joint_states": samples(stamps, wall)}
    assert cb.check_clock(sim, joints, clock, "/joint_states").status == cb.PASS
    # Stamps a second behind /clock: not sim time.
    lagging = {"/joint_states": samples(stamps - 1.0, wall)}
    assert cb.check_clock(sim, lagging, clock, "/joint_states").failed
    # The stand-in's config but wall-time stamps and no /clock.
    walls = {"/joint_states": samples(wall - 0.002, wall)}
    assert cb.check_clock(sim, walls, None, "/joint_states").failed
    real = cb.contract(load_config(None, {"driver.adapter": "ros2_control",
                                          "hil.reward.source": "human", "cameras": [],
                                          "tactile": []}))
    assert cb.check_clock(real, walls, None, "/joint_states").status == cb.PASS
    # Sim-time stamps on a backend without /clock: far from the wall clock.
    assert cb.check_clock(real, joints, None, "/joint_states").failed


def test_latency_limit():
    stream = cb.Stream("/joint_states", cb.JOINT_STATE, 100.0)
    fast = samples(range(100), latency=[0.001] * 100)
    assert cb.check_latency(stream, fast, 0.01).status == cb.PASS
    slow = samples(range(100), latency=[0.001] * 95 + [0.05] * 5)
    assert cb.check_latency(stream, slow, 0.01).failed
    assert cb.check_latency(stream, samples(range(3)), 0.01).status == cb.SKIP


def test_joint_target_for_the_box_probe_leaves_the_box():
    cfg = load_config(None)
    kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
    limits = ImpedanceController(kin, cfg.controller, np.array(cfg.robot.home))
    box_min, box_max = cfg.controller.workspace_min, cfg.controller.workspace_max
    q, face = cb.outside_box_joint_target(kin, np.array(cfg.robot.home), box_min, box_max,
                                          limits.q_min, limits.q_max)
    tcp = kin.forward(q).translation
    assert np.any(tcp < box_min) or np.any(tcp > box_max)
    assert np.all(q >= limits.q_min) and np.all(q <= limits.q_max)
    axis = "xyz".index(face[0])
    assert (tcp[axis] < box_min[axis]) if face.endswith("min") else (tcp[axis] > box_max[axis])
    with pytest.raises(ValueError, match="no joint target"):
        cb.outside_box_joint_target(kin, np.array(cfg.robot.home), [-5, -5, -5], [5, 5, 5],
                                    limits.q_min, limits.q_max)


def test_table_keeps_status_lines_verbatim():
    results = [cb.Result("command", "ee_target NaN", cb.PASS,
                         "REJECTED: ee_target: not finite: [nan 0. 0.]", "REJECTED:"),
               cb.Result("rate", "/clock", cb.FAIL, "3 messages", "10.0 Hz"),
               cb.Result("reset", "/scene/reset", cb.PASS, "max |q - home| 0.01 rad", "")]
    text = cb.render_table(results, "title")
    assert "[nan 0. 0.]" in text and "FAIL" in text and "PASS" in text
    md = cb.markdown_table(results)
    assert md.count("\n") == 4 and "| rate | `/clock` | FAIL |" in md
    assert "max \\|q - home\\| 0.01 rad" in md
    assert all(line.count("|") - line.count("\\|") == 6 for line in md.splitlines())


@pytest.mark.parametrize("argv, message", [
    (["--duration", "0"], "--duration 0.0: expected seconds > 0"),
    (["--rate-tolerance", "20"], "expected a fraction in (0, 1)"),
    (["--latency-limit", "-1"], "--latency-limit -1.0"),
])
def test_cli_refuses_meaningless_settings(argv, message, capsys):
    from robot_rl.cli import main
    assert main(["check-backend", *argv]) == 2
    assert message in capsys.readouterr().err


def test_distance_outside_the_box():
    lo, hi = [0.3, -0.2, 0.0], [0.7, 0.2, 0.5]
    assert cb.outside_box([0.5, 0.0, 0.2], lo, hi) == 0.0
    assert cb.outside_box([0.8, 0.0, 0.2], lo, hi) == pytest.approx(0.1)
    assert cb.outside_box([0.8, -0.3, 0.2], lo, hi) == pytest.approx(np.hypot(0.1, 0.1))
