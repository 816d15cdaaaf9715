"""The live view's content without ROS or a browser: what LiveView logs, read back from the
.rrd file Rerun writes."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.view import LiveView, RobotModel, heatmap


@pytest.fixture(scope="module")
def robot():
    return RobotModel(load_config(None).robot.urdf)


def logged(path) -> dict:
    """entity path -> list of (ros_time ns or None, {column: python value}) in log order."""
    from rerun.chunk import RrdReader

    out: dict = {}
    for chunk in RrdReader(str(path)).stream():
        batch = chunk.to_record_batch().to_pydict()
        rows = len(next(iter(batch.values())))
        for i in range(rows):
            t = batch.get("ros_time", [None] * rows)[i]
            ns = None if t is None else (t if isinstance(t, int) else int(t.value))
            out.setdefault(chunk.entity_path, []).append((ns, {k: v[i] for k, v in batch.items()}))
    for rows in out.values():
        rows.sort(key=lambda r: -1 if r[0] is None else r[0])
    return out


def scalars(rows) -> list[float]:
    return [r[1]["Scalars:scalars"][0] for r in rows]


def record(tmp_path, robot, steps):
    import rerun as rr

    path = tmp_path / "view.rrd"
    rec = rr.RecordingStream("robot_rl_test", recording_id="test")
    rec.save(str(path))
    view = LiveView(load_config(None), recording=rec, robot=robot)
    view.log_static()
    steps(view)
    rec.flush()
    rec.disconnect()
    return logged(path), view


def test_episode_outcomes_intervention_and_controller_reach_plots_and_status(tmp_path, robot):
    def steps(view):
        view.episode_event(1.0, {"event": "success", "return": 1.0, "intervention_rate": 0.25})
        view.episode_event(1.5, {"event": "reset_failed", "reason": "no pose"})  # not an outcome
        view.episode_event(2.0, {"event": "timeout", "return": 0.0, "intervention_rate": 0.0})
        view.episode_event(3.0, {"event": "success", "return": 1.0, "intervention_rate": 0.1})
        view.controller_status(3.5, {"mode": "policy", "latency_ms": {"p50": 0.4, "p99": 1.25}})
        view.controller_status(3.6, {"mode": "hold", "latency_ms": {"p50": float("nan"), "p99": None}})
        view.intervention(4.0, True)

    rows, view = record(tmp_path, robot, steps)
    assert scalars(rows["/episodes/success_rate"]) == pytest.approx([1.0, 0.5, 2 / 3])
    assert scalars(rows["/episodes/return"]) == [1.0, 0.0, 1.0]
    assert scalars(rows["/episodes/intervention_rate"]) == pytest.approx([0.25, 0.0, 0.1])
    assert scalars(rows["/controller/latency_ms/p99"]) == [1.25]  # NaN and None are not plotted
    assert scalars(rows["/intervention/active"]) == [1.0]
    text = rows["/status"][-1][1]["TextDocument:text"]
    text = text[0] if isinstance(text, list) else text
    assert "intervention:** ON" in text and "controller mode:** hold" in text
    assert "success rate:** 67 % (last 3)" in text and "episodes:** 3" in text
    assert rows["/status"][-1][0] == 4_000_000_000  # stamped with the message time


def test_robot_links_follow_the_joint_states(tmp_path, robot):
    def steps(view):
        view.joints(1.0, ["panda_joint1", "panda_joint4"], [0.0, -2.0])
        view.joints(2.0, ["panda_joint1"], [0.5])  # joint4 keeps -2.0

    rows, _ = record(tmp_path, robot, steps)
    moving = [r for r in rows["/world/robot/panda_link7_0"] if "Transform3D:translation" in r[1]]
    assert [r[0] for r in moving] == [1_000_000_000, 2_000_000_000]
    first, second = (np.asarray(r[1]["Transform3D:translation"]).reshape(3) for r in moving)
    # The first joint turns the whole arm about the base z axis: the wrist turns by 0.5 rad.
    c, s = np.cos(0.5), np.sin(0.5)
    assert np.allclose(second, np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ first, atol=1e-9)
    assert np.linalg.norm(first[:2]) > 0.1
    meshes = [r for r in rows["/world/robot/panda_link7_0"] if "Asset3D:blob" in r[1]]
    assert len(meshes) == 1  # sent once, with the first joint state
    fingers = rows["/world/robot/panda_leftfinger_0"]
    assert any("Boxes3D:half_sizes" in r[1] for r in fingers)


def test_heatmap_scales_taxels_to_colours():
    taxels = np.zeros((4, 4), np.float32)
    taxels[1, 2] = 2.0
    image = heatmap(taxels, scale=2.0, pixels=10)
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    assert image[15, 25].sum() > 500 and image[0, 0].sum() < 30  # full scale bright, zero dark
    half = heatmap(taxels * 0.5, scale=2.0, pixels=10)
    assert 30 < half[15, 25].sum() < image[15, 25].sum()
