"""What the DDS tests watch on a running training graph: the latest learner and actor status,
waited on with a predicate while the node processes are checked for deaths."""
import json
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from robot_rl.ros.messages import ACTOR_STATUS, LEARNER_STATUS


def node_logs(log_dir: Path, tail: int = 3000) -> str:
    """The end of every node log in ``log_dir``, for a failure message."""
    return "\n".join(f"--- {p.name}\n{p.read_text()[-tail:]}"
                     for p in sorted(Path(log_dir).glob("*.log")))


class StatusWatch:
    """Latest status per topic; subclasses add their own subscriptions to ``self.node``."""

    def __init__(self, name: str):
        self.node = rclpy.create_node(name)
        self.latest = {}
        for topic in (LEARNER_STATUS, ACTOR_STATUS):
            self.node.create_subscription(
                String, topic, lambda m, t=topic: self.latest.__setitem__(t, json.loads(m.data)), 10)
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)

    def wait(self, topic, pred, timeout, what, graphs, logs):
        """The first status on ``topic`` satisfying ``pred`` within ``timeout`` s; fails the test
        when a process of ``graphs`` (one NodeGraph or several) dies or time runs out."""
        graphs = graphs if isinstance(graphs, (list, tuple)) else [graphs]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.05)
            st = self.latest.get(topic)
            if st is not None and pred(st):
                return st
            for g in graphs:
                assert not g.failed(), f"a node died: {g.failed()}\n{logs()}"
        pytest.fail(f"timed out waiting for {what}; last {topic}: {self.latest.get(topic)}\n{logs()}")

    def close(self) -> None:
        self.ex.shutdown()
        self.node.destroy_node()


def wait_until(predicate, timeout: float = 20.0, step: float = 0.01) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` s (polled every ``step`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
