"""The demo report's media: a GIF of the deployed episodes from a recording's front camera,
and the reward classifier's confusion matrix against the simulator's ground truth."""
import json

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from PIL import Image as PILImage
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import String

from robot_rl.data.mcap_io import RecordingWriter
from robot_rl.envs.task import CUBE_HALF
from robot_rl.report import (classifier_confusion, confusion_counts, deployed_frames,
                             plot_confusion_matrix, write_gif)

LIFT = 0.08


def pixels(i: int, size: int = 16) -> np.ndarray:
    frame = np.full((size, size, 3), (i * 10) % 256, np.uint8)
    frame[: size // 2, :, 0] = 255 - (i * 10) % 256  # something a classifier can look at
    return frame


def frame_msg(i: int, stamp_ns: int, size: int = 16) -> bytes:
    msg = Image(height=size, width=size, encoding="rgb8", step=3 * size, data=pixels(i, size).tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return serialize_message(msg)


def pose_msg(xyz, stamp_ns: int) -> bytes:
    msg = PoseStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = xyz
    msg.pose.orientation.w = 1.0
    return serialize_message(msg)


@pytest.fixture
def deployment(tmp_path):
    """30 control periods: the controller active for frames 5-12 and 18-25 (two episodes);
    the cube lifted and held in frames 9-12 and 22-25."""
    writer = RecordingWriter(tmp_path / "deploy.mcap")
    for topic, type_name in (("/camera/front/image_raw", "sensor_msgs/msg/Image"),
                             ("/controller/status", "std_msgs/msg/String"),
                             ("/sim/object_pose", "geometry_msgs/msg/PoseStamped"),
                             ("/robot/ee_pose", "geometry_msgs/msg/PoseStamped")):
        writer.add_channel(topic, type_name)
    truth = []
    for i in range(30):
        t = 10**9 + i * 10**8
        active = 5 <= i <= 12 or 18 <= i <= 25
        lifted = 9 <= i <= 12 or 22 <= i <= 25
        truth.append(lifted)
        cube = (0.5, 0.0, CUBE_HALF + (0.1 if lifted else 0.0))
        writer.write("/controller/status",
                     serialize_message(String(data=json.dumps({"mode": "POLICY" if active
                                                               else "IDLE"}))), t)
        writer.write("/sim/object_pose", pose_msg(cube, t), t + 1)
        writer.write("/robot/ee_pose", pose_msg((0.5, 0.0, cube[2] + 0.01), t), t + 2)
        writer.write("/camera/front/image_raw", frame_msg(i, t), t + 3)
    return writer.close(), np.array(truth)


def test_gif_of_the_deployed_episodes(deployment, tmp_path):
    path, _ = deployment
    frames = deployed_frames(path, "front", episodes=2)
    assert len(frames) == 16  # only while the controller was active
    assert frames[0][0, 0].tolist() == [255 - 50, 50, 50]  # frame 5
    one = deployed_frames(path, "front", episodes=1)
    assert len(one) == 8
    gif = write_gif(frames, tmp_path / "deployed.gif", fps=10, scale=2)
    with PILImage.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 16 and image.size == (32, 32)
        image.seek(3)
        assert image.convert("RGB").getpixel((0, 31)) == (80, 80, 80)  # frame 8, bottom half
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match=r"frame 0 is float32 \(2, 2\); expected uint8"):
        write_gif([np.zeros((2, 2), np.float32)], tmp_path / "bad.gif")
    with pytest.raises(ValueError, match="no /camera/wrist/image_raw channel"):
        deployed_frames(path, "wrist")


def test_classifier_confusion_matrix_against_the_sim(deployment, tmp_path):
    from robot_rl.hil.reward_classifier import RewardClassifier

    path, truth = deployment
    clf = RewardClassifier.create(["front"], (16, 16, 3), seed=3)
    clf.threshold = 0.5
    counts = classifier_confusion(path, clf, LIFT)
    frames = np.stack([pixels(i) for i in range(30)])
    expected = confusion_counts(clf.predict(frames) >= 0.5, truth)
    assert counts == expected and sum(counts.values()) == 30
    assert counts["true_positive"] + counts["false_negative"] == 8  # the lifted frames
    png = plot_confusion_matrix(counts, tmp_path / "confusion.png")
    with PILImage.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 200
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        confusion_counts([1, 0, 1], [1, 0])
