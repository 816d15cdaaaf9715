"""Authenticated learning traffic over real DDS between real processes (issue 19, item 3): an
actor process refuses forged weights and a learner process refuses forged transitions, each
counted by reason in its status; what its run keystore signed is accepted."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from std_msgs.msg import String, UInt8MultiArray

from robot_rl import security, transport
from robot_rl.config import load_config, save_config

SMALL = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
         "agent.hidden_dims": [32, 32], "agent.num_critics": 2, "agent.batch_size": 8,
         "learner.min_online": 10**6, "learner.tensorboard": False, "learner.log_every": 0.3}


@pytest.fixture
def run(tmp_path):
    keys = tmp_path / "keys"
    security.init_keystore(keys, actors=2)
    cfg = load_config(None, {**SMALL, "security.keystore": str(keys),
                             "learner.run_dir": str(tmp_path / "train")})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    rclpy.init()
    node = rclpy.create_node("forger")
    yield cfg, path, keys, node
    node.destroy_node()
    rclpy.try_shutdown()


def start_node(module: str, name: str, config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, "--ros-args", "-r", f"__node:={name}",
                             "-p", f"config_file:={config}"], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


class StatusWatch:
    def __init__(self, node, topic: str):
        from robot_rl.ros.messages import STATUS_QOS
        self.latest: dict = {}
        self.node = node
        node.create_subscription(String, topic, lambda m: self.latest.update(json.loads(m.data)),
                                 STATUS_QOS)

    def wait(self, predicate, proc: subprocess.Popen, log: Path, what: str, timeout=90.0):
        deadline = time.monotonic() + timeout
        while not predicate(self.latest):
            rclpy.spin_once(self.node, timeout_sec=0.1)
            if proc.poll() is not None:
                pytest.fail(f"node exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; status {self.latest}\n"
                            f"{log.read_text()[-3000:]}")
        return self.latest


def wait_matched(node, pub, proc, log, timeout=90.0):
    deadline = time.monotonic() + timeout
    while pub.get_subscription_count() < 1:
        rclpy.spin_once(node, timeout_sec=0.1)
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the node never subscribed"


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, as `kill PID` or a service manager sends it: the node must exit 0."""
    proc.terminate()
    try:
        code = proc.wait(timeout=25)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the node did not stop on SIGTERM") from None
    assert code == 0, f"exit code {code} after SIGTERM"


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def test_actor_process_refuses_forged_weights(run, tmp_path):
    from robot_rl.learning.rlpd import RLPDAgent
    from robot_rl.deploy.agent_export import task_spaces
    from robot_rl.ros.messages import ACTOR_STATUS, ACTOR_WEIGHTS, WEIGHTS_QOS

    cfg, path, keys, node = run
    log = tmp_path / "actor.log"
    proc = start_node("robot_rl.ros.actor_node", "actor_0", path, log)  # no robot: it waits
    try:
        status = StatusWatch(node, ACTOR_STATUS)
        pub = node.create_publisher(UInt8MultiArray, ACTOR_WEIGHTS, WEIGHTS_QOS)
        wait_matched(node, pub, proc, log)
        status.wait(lambda s: s.get("authenticated") is True, proc, log, "the first status")
        state = RLPDAgent(*task_spaces(cfg)[:2], cfg.agent).actor_state_dict()
        huge = {part: {k: v * 1e30 if v.is_floating_point() else v for k, v in p.items()}
                for part, p in state.items()}
        learner = security.Signer.load(keys, "learner")
        good = transport.encode_weights(state, 5, 10, "L", "R", signer=learner)
        forgeries = [  # (expected reason, message): each waits for its count before the next
            ("unsigned", transport.encode_weights(huge, 1, 10, "L", "R")),
            ("unknown_key", transport.encode_weights(huge, 2, 10, "L", "R",
                                                     signer=security.Signer.generate())),
            ("wrong_role", transport.encode_weights(huge, 3, 10, "L", "R",
                                                    signer=security.Signer.load(keys, "actor_0"))),
            ("unfit_weights", transport.encode_weights(huge, 4, 10, "L", "R", signer=learner)),
            ("bad_signature", _flip_last(transport.encode_weights(state, 9, 10, "L", "R",
                                                                  signer=learner))),
        ]
        expected: dict = {}
        for reason, data in forgeries:
            pub.publish(transport.to_msg(data))
            expected[reason] = 1
            status.wait(lambda s: s.get("rejections") == expected, proc, log, reason)
        assert status.latest["weights_received"] == 0
        pub.publish(transport.to_msg(good))
        final = status.wait(lambda s: s.get("weights_received") == 1, proc, log, "good weights")
        assert final["rejections"] == expected  # nothing else was refused
    finally:
        stop(proc)
    assert "Traceback" not in log.read_text()


def _steps(n, reward=0.0, intervened=False):
    obs = {"state": np.zeros(8, np.float32), "object": np.zeros(6, np.float32)}
    return [transport.StepRecord(
        action=np.zeros(4, np.float32), reward=reward, terminated=False, truncated=k == n - 1,
        intervened=intervened, next_obs={"state": np.full(8, k + 1, np.float32),
                                         "object": np.zeros(6, np.float32)},
        step=k, obs=obs if k == 0 else None) for k in range(n)]


def test_learner_process_refuses_forged_transitions(run, tmp_path):
    from robot_rl.deploy.agent_export import task_spaces
    from robot_rl.ros.messages import LEARNER_STATUS, TRANSITIONS, TRANSITIONS_QOS

    cfg, path, keys, node = run
    spec = transport.obs_spec_of(task_spaces(cfg)[0])
    log = tmp_path / "learner.log"
    proc = start_node("robot_rl.ros.learner_node", "learner", path, log)
    try:
        status = StatusWatch(node, LEARNER_STATUS)
        pub = node.create_publisher(UInt8MultiArray, TRANSITIONS, TRANSITIONS_QOS)
        wait_matched(node, pub, proc, log)
        status.wait(lambda s: s.get("authenticated") is True, proc, log, "the first status")
        actor0, actor1 = (security.Signer.load(keys, f"actor_{i}") for i in (0, 1))

        def batch(signer, actor_id=0, **kw):
            return transport.encode_transitions(_steps(3, **kw), actor_id, 0, 0, spec,
                                                signer=signer)

        forgeries = {
            "unsigned": batch(None, reward=1.0, intervened=True),
            "unknown_key": batch(security.Signer.generate(), reward=1.0, intervened=True),
            "actor_id_mismatch": batch(actor1, actor_id=0),  # a real key claiming another actor
            "wrong_role": batch(security.Signer.load(keys, "learner")),
            "out_of_range": batch(actor0, reward=1e6, intervened=True),  # sparse task: [0, 1]
            "bad_signature": _flip_last(batch(actor0)),
        }
        for data in forgeries.values():
            pub.publish(transport.to_msg(data))
        expected = {reason: 1 for reason in forgeries}
        status.wait(lambda s: s.get("rejections") == expected, proc, log, "every refusal")
        assert status.latest["online"] == 0 and status.latest["demo"] == 0
        pub.publish(transport.to_msg(batch(actor0)))  # the genuine actor 0
        final = status.wait(lambda s: s.get("online") == 3, proc, log, "the genuine batch")
        assert final["rejections"] == expected and final["demo"] == 0
    finally:
        stop(proc)
    assert "Traceback" not in log.read_text()


def test_restricted_reset_service_needs_an_operator_token(tmp_path):
    """security.restrict_commands on the simulator's /scene/reset: a plain call, a call
    announced by a stranger's token or by the learner's key are refused; the operator key
    (`robot-rl call --keystore`) and an actor key (an actor resets its scene) get through."""
    keys = tmp_path / "keys"
    security.init_keystore(keys, actors=1)
    cfg = load_config(None, {"cameras": [], "task.observations": ["state", "object"],
                             "security.keystore": str(keys), "security.restrict_commands": True})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    log = tmp_path / "sim.log"
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.ros.sim_node", "--ros-args", "-p",
                             f"config_file:={path}"], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)

    def call(*extra):
        return subprocess.run([sys.executable, "-m", "robot_rl.cli", "call", "/scene/reset",
                               "--timeout", "60", *extra], capture_output=True, text=True,
                              timeout=120)

    try:
        plain = call()
        assert plain.returncode == 1 and "success=False" in plain.stdout, plain
        assert "security.restrict_commands" in plain.stdout
        other = tmp_path / "other"  # an operator key of another keystore
        security.init_keystore(other, actors=0)
        assert call("--keystore", str(other)).returncode == 1
        signed = call("--keystore", str(keys))
        assert signed.returncode == 0 and "success=True" in signed.stdout, signed
        learner_key = call("--keystore", str(keys), "--key", "learner")  # not an operator
        assert learner_key.returncode == 1
        actor_key = call("--keystore", str(keys), "--key", "actor_0")  # actors reset scenes
        assert actor_key.returncode == 0, actor_key
    finally:
        stop(proc)
    text = log.read_text()
    assert "Traceback" not in text
    assert "refused a command token (unknown_key)" in text
    assert "refused a command token (wrong_role)" in text
