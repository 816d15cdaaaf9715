"""``robot-rl view`` against a running sim graph, looked at in headless Chromium: the page shows
the robot (placed from /joint_states) and the camera images, which it did not before the graph
ran."""
from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ros.conftest import start_sim
from tests.ros.headless_browser import HeadlessChromium, chromium_path
from tests.test_view_model import logged, scalars

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def robot_fraction(region: np.ndarray) -> float:
    """Share of pixels shaded like the light-grey link meshes (the 3D view's background is
    near-white, its grid lines lighter than 215)."""
    mean = region.mean(axis=-1)
    spread = region.max(axis=-1).astype(int) - region.min(axis=-1)
    return float(((mean > 90) & (mean < 215) & (spread < 20)).mean())


def table_fraction(region: np.ndarray) -> float:
    """Share of pixels of the brown table top the sim cameras see."""
    r, g, b = (region[..., i].astype(int) for i in range(3))
    return float(((r > g) & (g > b) & (r - b > 40)).mean())


def regions(shot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The blueprint's 3D view (left 43 %) and the sensor grid (top right) of a screenshot."""
    h, w, _ = shot.shape
    return shot[int(0.1 * h):int(0.95 * h), :int(0.42 * w)], shot[int(0.06 * h):int(0.47 * h), int(0.45 * w):]


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.fixture
def live_view(tmp_path):
    web, grpc = free_port(), free_port()
    cmd = [sys.executable, "-m", "robot_rl.cli", "view", "--set", f"view.web_port={web}",
           "--set", f"view.grpc_port={grpc}", "--set", "view.camera_rate_hz=0",
           "--set", f"view.save_rrd={tmp_path / 'view.rrd'}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    url, output = None, []
    try:
        while url is None:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError(f"robot-rl view printed no URL within 60 s: {output}") from None
            output.append(line)
            match = re.search(r"live view at (http://\S+)", line)
            url = match.group(1) if match else None
            assert proc.poll() is None or url, f"robot-rl view exited: {output}"
        assert url.startswith(f"http://127.0.0.1:{web}/")
        yield url, proc, (web, grpc)
    finally:
        stop(proc)
    # Ctrl-C also ends the Rerun server the view started: nothing keeps listening.
    assert not listening(web) and not listening(grpc)


def publish_status_messages() -> float:
    """What the actor, the controller and the intervention node publish, from this process over
    DDS, once the view subscribes; returns the newest sim stamp seen (from /clock)."""
    import json

    import rclpy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Joy
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node("view_test_publisher")
    try:
        stamps = []
        node.create_subscription(Clock, "/clock", lambda m: stamps.append(m.clock.sec + m.clock.nanosec * 1e-9), 10)
        publishers = {topic: node.create_publisher(kind, topic, 10) for topic, kind in
                      (("/episode/event", String), ("/controller/status", String),
                       ("/intervention/action", Joy))}
        deadline = time.monotonic() + 60
        while not stamps or any(p.get_subscription_count() == 0 for p in publishers.values()):
            assert time.monotonic() < deadline, "the view did not subscribe within 60 s"
            rclpy.spin_once(node, timeout_sec=0.2)
        event = {"actor_id": 0, "episode": 1, "event": "success", "return": 0.75, "length": 30,
                 "interventions": 3, "intervention_rate": 0.1, "steps_since_intervention": 5}
        publishers["/episode/event"].publish(String(data=json.dumps(event)))
        publishers["/controller/status"].publish(String(data=json.dumps(
            {"mode": "POLICY", "latency_ms": {"p50": 0.5, "p99": 1.5, "n": 100}})))
        joy = Joy(axes=[0.0, 0.0, 0.0, 0.0], buttons=[1])
        joy.header.stamp.sec = int(stamps[-1])  # the intervention node stamps Joy with sim time
        publishers["/intervention/action"].publish(joy)
        end = time.monotonic() + 3.0  # let DDS deliver before the publishers go
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        return max(stamps)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def wait_for(browser: HeadlessChromium, condition, timeout_s: float, what: str) -> np.ndarray:
    deadline = time.monotonic() + timeout_s
    while True:
        shot = browser.screenshot()
        if condition(shot):
            return shot
        if time.monotonic() > deadline:
            scene, sensors = regions(shot)
            raise AssertionError(f"{what} not seen within {timeout_s:g} s (3D view: robot "
                                 f"{robot_fraction(scene):.3f}, table {table_fraction(scene):.3f}; "
                                 f"images: table {table_fraction(sensors):.3f})")
        time.sleep(1.0)


@pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium (scripts/install.sh installs it)")
def test_view_shows_robot_and_camera_images_of_a_running_sim_graph(live_view, tmp_path):
    url, view_proc, ports = live_view
    with HeadlessChromium() as browser:
        browser.open(url)
        # Connected and showing the layout: the table top the view draws from the start (static).
        empty = wait_for(browser, lambda s: table_fraction(regions(s)[0]) > 0.03, timeout_s=180,
                         what="the view's layout with its table")
        scene, sensors = regions(empty)
        assert robot_fraction(scene) < 0.01 and table_fraction(sensors) < 0.01  # nothing published yet

        cfg, nodes = start_sim(tmp_path)  # default cameras: 128 x 128 front and wrist
        try:
            shot = wait_for(browser, lambda s: robot_fraction(regions(s)[0]) > 0.03
                            and table_fraction(regions(s)[1]) > 0.03,
                            timeout_s=180, what="the robot and the camera images")
            sim_stamp = publish_status_messages()
        finally:
            nodes.stop()
        assert view_proc.poll() is None
    assert stop(view_proc) == 0
    rows = logged(tmp_path / "view.rrd")  # what the view showed, from its .rrd copy
    assert scalars(rows["/episodes/success_rate"]) == [1.0]
    assert scalars(rows["/episodes/return"]) == [0.75]
    assert scalars(rows["/controller/latency_ms/p99"]) == [1.5]
    assert scalars(rows["/intervention/active"])[-1] == 1.0
    text = rows["/status"][-1][1]["TextDocument:text"]
    assert "controller mode:** POLICY" in str(text) and "intervention:** ON" in str(text)
    # The JSON messages have no stamp: they sit on the sim's time axis, not at wall-clock time.
    episode_ns = rows["/episodes/return"][0][0]
    assert 0 < episode_ns <= (sim_stamp + 5.0) * 1e9  # the view may have seen a newer period
    assert rows["/cameras/front"] and rows["/tactile/left"]
    import cv2

    cv2.imwrite(str(tmp_path / "live_view.png"), shot[..., ::-1])
    target = os.environ.get("ROBOT_RL_VIEW_SCREENSHOT")  # docs/img/live_view.png is made this way
    if target:
        cv2.imwrite(target, shot[..., ::-1])
