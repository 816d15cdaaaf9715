"""Reward node: task success and reward per camera frame, for real robots (learned) or the sim
(simulator state).

* ``hil.reward.source: classifier``: loads ``hil.reward.model`` (a folder written by
  ``robot-rl reward-classifier train``; refused when its cameras or image size differ from the
  configured cameras'), subscribes the cameras the model was trained on
  (``/camera/<name>/image_raw``) and, for every frame of its first camera (with the latest
  frame of the others), publishes ``/task/success`` (std_msgs/Bool: probability >=
  ``hil.reward.threshold``), ``/task/reward`` (std_msgs/Float32: 1.0 or 0.0, the sparse reward)
  and ``/task/success_probability`` (std_msgs/Float32). The ROS env (actor) reads
  ``/task/success``: ``hil.reward.consecutive`` True in a row end an episode as a success.
* ``source: sim_state``: the same topics from simulator state (``/sim/object_pose`` and
  ``/robot/ee_pose``, the task's ``success``), one message per TCP pose.
* ``hil.reward.record_dir`` set: instead of serving, records frames of every configured camera
  labelled by the operator's success button (Joy ``buttons[2]`` on ``hil.topic``) and the
  episode number from ``/episode/event`` into ``<record_dir>/frames_<time>.npz`` on shutdown,
  on an error, or when ``/reward/save`` (std_srvs/Trigger) is called; ``robot-rl
  reward-classifier collect`` runs this mode in the foreground (:func:`collect_frames`).
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, Joy
from std_msgs.msg import Bool, Float32, String
from std_srvs.srv import Trigger

from robot_rl.config import Config
from robot_rl.parsing import InputError, parse_episode_event
from robot_rl.ros import messages as m
from robot_rl.topics import REWARD_SAVE


class RewardNode(Node):
    def __init__(self, cfg: Config | None = None, name: str = "reward"):
        super().__init__(name)
        if cfg is None:
            from robot_rl.ros.node_utils import declare_config
            cfg = declare_config(self)
        self.cfg = cfg
        self.rc = rc = cfg.hil.reward
        self.frames = 0
        self._lock = threading.Lock()
        self._latest: dict[str, np.ndarray] = {}
        self.pub_success = self.create_publisher(Bool, rc.success_topic, 10)
        self.pub_reward = self.create_publisher(Float32, rc.reward_topic, 10)
        self.pub_prob = self.create_publisher(Float32, rc.probability_topic, 10)
        self.recorder = None
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics
        tracker = HealthTracker()
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            {"frames": self.frames}, values={"source": rc.source}))
        if rc.record_dir:
            self._start_recording()
        elif rc.source == "classifier":
            self._start_classifier()
        elif rc.source == "sim_state":
            self._start_sim_state()
        else:
            raise ValueError(f"hil.reward.source is {rc.source!r}: the actor's env reads "
                             f"{'the operator buttons' if rc.source == 'human' else rc.success_topic} "
                             f"itself and the reward node has nothing to serve; start it for "
                             f"'classifier' or 'sim_state', or to record frames "
                             f"(hil.reward.record_dir)")

    # -- learned ---------------------------------------------------------------------------------
    def _start_classifier(self) -> None:
        from robot_rl.hil.reward_classifier import RewardClassifier
        if not self.rc.model:
            raise FileNotFoundError("hil.reward.model is empty: train a classifier with "
                                    "`robot-rl reward-classifier train --out DIR` and set "
                                    "hil.reward.model:=DIR (or hil.reward.source:=sim_state "
                                    "in the simulator)")
        from robot_rl.hil.reward_classifier import check_against_config, read_meta
        check_against_config(read_meta(self.rc.model), self.cfg, self.rc.model)
        self.classifier = RewardClassifier.load(self.rc.model)
        self.cameras = self.classifier.cameras
        for i, cam in enumerate(self.cameras):
            self.create_subscription(Image, m.camera_image_topic(cam),
                                     lambda msg, c=cam, first=(i == 0): self._on_image(c, msg, first),
                                     m.SENSOR_QOS)
        self.get_logger().info(
            f"reward classifier {self.rc.model} on cameras {self.cameras}, threshold "
            f"{self.rc.threshold} -> {self.rc.success_topic}, {self.rc.reward_topic}")

    def _on_image(self, camera: str, msg: Image, first: bool) -> None:
        try:
            image = m.msg_to_image(msg)
        except ValueError as exc:
            self.get_logger().error(f"camera {camera}: {exc}", throttle_duration_sec=2.0)
            return
        with self._lock:
            self._latest[camera] = image
            if not first or len(self._latest) < len(self.cameras):
                return
            images = dict(self._latest)
        try:
            prob = float(self.classifier.predict(images)[0])
        except ValueError as exc:
            self.get_logger().error(str(exc), throttle_duration_sec=2.0)
            return
        self._publish(prob >= self.rc.threshold, prob)

    def _publish(self, success: bool, prob: float) -> None:
        self.frames += 1
        self.pub_success.publish(Bool(data=bool(success)))
        self.pub_reward.publish(Float32(data=1.0 if success else 0.0))
        self.pub_prob.publish(Float32(data=float(prob)))

    # -- simulator state ------------------------------------------------------------------------
    def _start_sim_state(self) -> None:
        from robot_rl.envs.task import make_task
        self.task = make_task(self.cfg, np.array([0.0, 0.0, 0.0, 1.0]))
        self._object = None
        self.create_subscription(PoseStamped, m.OBJECT_POSE, self._on_object, m.SENSOR_QOS)
        self.create_subscription(PoseStamped, m.EE_POSE, self._on_pose, m.SENSOR_QOS)
        self.get_logger().info("reward from /sim/object_pose (simulator state)")

    def _on_object(self, msg: PoseStamped) -> None:
        self._object = m.decode_input("object", msg, ())

    def _on_pose(self, msg: PoseStamped) -> None:
        if self._object is None:
            return
        snap = m.snapshot_from_inputs({"ee_pose": m.decode_input("ee_pose", msg, ()),
                                       "object": self._object}, m.from_time(msg.header.stamp))
        success = self.task.success(snap)
        self._publish(success, float(success))

    # -- recording labelled frames --------------------------------------------------------------
    def _start_recording(self) -> None:
        from robot_rl.hil.reward_classifier import FrameRecorder
        folder = Path(self.rc.record_dir)
        try:  # refuse an unusable folder now, not after an hour of labelling
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"hil.reward.record_dir {str(folder)!r} cannot be created "
                             f"({exc}); expected a writable folder") from None
        if not os.access(folder, os.W_OK):
            raise ValueError(f"hil.reward.record_dir {str(folder)!r} is not writable; "
                             f"expected a writable folder")
        self.cameras = [c.name for c in self.cfg.cameras]
        self.recorder = FrameRecorder(self.cameras)
        self.positives = self.rejected_frames = 0
        self._label = (0.0, False)
        self.episode = 0  # /episode/event's episode: the number recorded frames carry
        self.rejected_events = 0
        for i, cam in enumerate(self.cameras):
            self.create_subscription(Image, m.camera_image_topic(cam),
                                     lambda msg, c=cam, first=(i == 0): self._on_record(c, msg, first),
                                     m.SENSOR_QOS)
        self.create_subscription(Joy, self.cfg.hil.topic, self._on_joy, 10)
        self.create_subscription(String, m.EPISODE_EVENT, self._on_event, 10)
        self.create_service(Trigger, REWARD_SAVE, self._on_save)
        self.get_logger().info(f"recording frames of {self.cameras} labelled by Joy buttons[2] "
                               f"on {self.cfg.hil.topic} into {self.rc.record_dir}")

    def _on_joy(self, msg: Joy) -> None:
        self._label = (time.monotonic(), len(msg.buttons) > 2 and bool(msg.buttons[2]))

    def _on_event(self, msg: String) -> None:
        try:
            self.episode = parse_episode_event(msg.data).episode
        except InputError as exc:  # anyone on the domain can publish here: log, count, go on
            self.rejected_events += 1
            self.get_logger().warning(f"{m.EPISODE_EVENT}: ignored ({exc})", throttle_duration_sec=2.0)

    def _on_record(self, camera: str, msg: Image, first: bool) -> None:
        # A bad frame is reported and skipped; the frames recorded so far are kept.
        try:
            image = m.msg_to_image(msg)
        except ValueError as exc:
            self.rejected_frames += 1
            self.get_logger().error(f"camera {camera}: frame skipped ({exc})",
                                    throttle_duration_sec=2.0)
            return
        with self._lock:
            self._latest[camera] = image
            if not first or len(self._latest) < len(self.cameras):
                return
            when, pressed = self._label
            label = pressed and time.monotonic() - when < 0.5
            try:
                self.recorder.add(dict(self._latest), label, self.episode,
                                  m.from_time(msg.header.stamp))
            except ValueError as exc:
                self.rejected_frames += 1
                self.get_logger().error(f"frame skipped ({exc})", throttle_duration_sec=2.0)
                return
            self.frames += 1
            self.positives += int(label)

    def save(self) -> Path | None:
        """Write the frames recorded since the last save to a new file in ``record_dir``; if
        that fails (disk full, folder removed), to the system's temporary folder: recorded
        frames are never dropped."""
        with self._lock:
            if self.recorder is None or not len(self.recorder):
                return None
            try:
                path = self.recorder.save(_new_file(Path(self.rc.record_dir)))
            except OSError as exc:
                import tempfile
                path = self.recorder.save(_new_file(Path(tempfile.gettempdir())))
                self.get_logger().error(f"could not save to {self.rc.record_dir} ({exc}); "
                                        f"saved the frames to {path} instead")
            self.recorder = type(self.recorder)(self.cameras)
        self.get_logger().info(f"saved labelled frames to {path}")
        return path

    def _on_save(self, request, response):
        path = self.save()
        response.success = path is not None
        response.message = str(path) if path else "no frames recorded yet"
        return response

    def close(self) -> None:
        self.save()


def _new_file(folder: Path) -> Path:
    """``frames_<time>.npz`` in ``folder``, never an existing file (two saves in one second)."""
    stem = f"frames_{time.strftime('%Y%m%d_%H%M%S')}"
    path, n = folder / f"{stem}.npz", 1
    while path.exists():
        path, n = folder / f"{stem}_{n}.npz", n + 1
    return path


def collect_frames(config_file: str | None, overrides: dict, out: str, max_frames: int = 0,
                   duration: float = 0.0) -> Path | None:
    """``robot-rl reward-classifier collect``: record labelled frames of the running graph's
    cameras into ``out`` until Ctrl-C/SIGTERM, ``max_frames`` frames or ``duration`` s; what
    was recorded is saved however it ends. The saved file, or None when no frame came."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from robot_rl.config import load_config
    from robot_rl.schema import ConfigError
    from robot_rl.shutdown import signals_deferred, stop_on_signals

    cfg = load_config(config_file, {**overrides, "hil.reward.record_dir": str(out)})
    if not cfg.cameras:
        raise ConfigError("cameras is empty: there are no frames to record; configure the "
                          "cameras the classifier will judge (cameras: [{name: front, ...}])")
    stop_on_signals()
    owns = not rclpy.ok()
    if owns:
        rclpy.init()
    node = RewardNode(cfg, name="reward_collect")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print(f"recording {node.cameras} labelled by the success button (Joy buttons[2] on "
          f"{cfg.hil.topic}); Ctrl-C to stop", flush=True)
    deadline = time.monotonic() + duration if duration > 0 else float("inf")
    path = None
    shown, next_show = 0, 0.0
    try:
        while (not max_frames or node.frames < max_frames) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            if node.frames != shown and time.monotonic() >= next_show:  # progress, 1 Hz
                shown, next_show = node.frames, time.monotonic() + 1.0
                print(f"{shown} frames, {node.positives} labelled success", flush=True)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        with signals_deferred(restore=True):
            frames, positives = node.frames, node.positives
            path = node.save()
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
            if owns:
                rclpy.try_shutdown()
    if path is None:
        print(f"no frame recorded: are the cameras {node.cameras} publishing on "
              f"ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')}?")
    else:
        print(f"{path}: {frames} frames, {positives} labelled success")
    return path


def main(args=None) -> int:
    from robot_rl.ros.node_utils import run_nodes
    return run_nodes(lambda: [RewardNode()], args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
