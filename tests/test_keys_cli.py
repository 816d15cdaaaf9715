"""`robot-rl keys` (run keystore and SROS2 layout), as a user runs it."""
import os
import shutil
import stat
import subprocess
import sys

from robot_rl import security


def robot_rl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_keys_init_add_actor_show(tmp_path):
    keys = tmp_path / "keys"
    out = robot_rl("keys", "init", str(keys), "--actors", "2")
    assert out.returncode == 0, out.stderr
    assert "actor_id=1" in out.stdout and "security.keystore=" in out.stdout
    assert robot_rl("keys", "add-actor", str(keys), "--actor-id", "7").returncode == 0
    shown = robot_rl("keys", "show", str(keys))
    assert "actor_7" in shown.stdout and shown.stdout.count("(private key here)") == 5
    again = robot_rl("keys", "init", str(keys))
    assert again.returncode == 2 and "already holds a keystore" in again.stderr
    dup = robot_rl("keys", "add-actor", str(keys), "--actor-id", "7")
    assert dup.returncode == 2 and "'actor_7'" in dup.stderr
    assert security.Keyring.load(keys).by_name("actor_7").actor_id == 7


def test_sros2_layout_is_signed_by_its_ca(tmp_path):
    assert shutil.which("openssl"), "the openssl CLI (scripts/install.sh installs it) checks the files"
    root = tmp_path / "sros2"
    out = robot_rl("keys", "sros2", str(root))
    assert out.returncode == 0, out.stderr
    ca = root / "public" / "ca.cert.pem"
    assert os.readlink(root / "public" / "permissions_ca.cert.pem") == "ca.cert.pem"
    assert stat.S_IMODE((root / "private" / "ca.key.pem").stat().st_mode) == 0o600
    for name in ("learner", "actor", "controller", "operator", "mujoco_sim"):
        enclave = root / "enclaves" / "robot_rl" / name
        for f in ("cert.pem", "key.pem", "governance.p7s", "identity_ca.cert.pem",
                  "permissions_ca.cert.pem", "permissions.xml", "permissions.p7s"):
            assert (enclave / f).is_file(), f"{name}: {f}"
        chain = subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(enclave / "cert.pem")],
                               capture_output=True, text=True)
        assert chain.returncode == 0, chain.stderr
        subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in",
                                  str(enclave / "cert.pem")], capture_output=True, text=True)
        assert f"/robot_rl/{name}" in subject.stdout
        for signed in ("permissions", "governance"):
            p7s = enclave / f"{signed}.p7s"
            check = subprocess.run(["openssl", "smime", "-verify", "-in", str(p7s), "-CAfile",
                                    str(ca), "-purpose", "any", "-text"], capture_output=True)
            assert check.returncode == 0, check.stderr
            xml = (enclave / "permissions.xml" if signed == "permissions"
                   else root / "enclaves" / "governance.xml").read_bytes()
            assert check.stdout.replace(b"\r\n", b"\n") == xml
    perms = (root / "enclaves" / "robot_rl" / "learner" / "permissions.xml").read_text()
    assert "<topic>rt/rl/actor_weights</topic>" in perms.split("<subscribe>")[0]  # it publishes
    assert "<topic>rt/rl/transitions</topic>" in perms.split("<subscribe>")[1]
    assert "<default>DENY</default>" in perms
    operator = (root / "enclaves" / "robot_rl" / "operator" / "permissions.xml").read_text()
    assert "rq/controller/engageRequest" in operator
    actor = (root / "enclaves" / "robot_rl" / "actor" / "permissions.xml").read_text()
    assert "rq/controller/engageRequest" not in actor  # an actor cannot engage the controller


def test_every_node_of_the_graph_has_an_enclave_and_gets_it_when_security_is_on():
    from robot_rl.config import load_config
    from robot_rl.graph import graph
    from robot_rl.launcher import node_command
    from robot_rl.sros2 import POLICY, enclave_of

    real = load_config(None, {"driver.adapter": "ros2_control", "hil.reward.source": "human",
                              "hil.reward.record_dir": "/x",
                              "cameras": [{"name": "front", "backend": "realsense"}],
                              "tactile": [{"name": "left", "backend": "serial_taxel"}]})
    specs = {s.executable: s for cfg in (load_config(None), real)
             for profile in ("robot", "train", "deploy") for s in graph(cfg, "c.yaml", profile)}
    assert set(specs) <= set(POLICY)  # every node process has a policy of its own
    learner = specs["learner"]
    assert "--enclave" not in node_command(learner, env={})
    cmd = node_command(learner, env={"ROS_SECURITY_ENABLE": "true"})
    assert cmd[cmd.index("--enclave") + 1] == enclave_of("learner") == "/robot_rl/learner"
