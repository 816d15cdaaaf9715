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


@pytest.fixture
def live_view(tmp_path):
    web, grpc = free_port(), free_port()
    cmd = [sys.executable, "-m", "robot_rl.cli", "view", "--set", f"view.web_port={web}",
           "--set", f"view.grpc_port={grpc}", "--set", "view.camera_rate_hz=0"]
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
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Ctrl-C also ends the Rerun server the view started: nothing keeps listening.
    assert not listening(web) and not listening(grpc)


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
        finally:
            nodes.stop()
        assert view_proc.poll() is None
    import cv2

    cv2.imwrite(str(tmp_path / "live_view.png"), shot[..., ::-1])
    target = os.environ.get("ROBOT_RL_VIEW_SCREENSHOT")  # docs/img/live_view.png is made this way
    if target:
        cv2.imwrite(target, shot[..., ::-1])
