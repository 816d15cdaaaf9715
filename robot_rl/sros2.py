"""SROS2 keystore for apt ROS 2: DDS authentication, encryption and access control per node.

``robot-rl keys sros2 DIR`` writes the layout ``ros2 security create_keystore`` and
``create_enclave`` would write (Jazzy), with permissions generated from this project's node
graph instead of a blanket allow::

    DIR/public/ca.cert.pem (+ identity_ca.cert.pem, permissions_ca.cert.pem: the same CA)
    DIR/private/ca.key.pem (+ identity_ca.key.pem, permissions_ca.key.pem), mode 0600
    DIR/enclaves/governance.xml, governance.p7s
    DIR/enclaves/robot_rl/<node>/{cert.pem, key.pem, governance.p7s, identity_ca.cert.pem,
                                   permissions_ca.cert.pem, permissions.xml, permissions.p7s}

Run a node with ``ROS_SECURITY_KEYSTORE=DIR ROS_SECURITY_ENABLE=true
ROS_SECURITY_STRATEGY=Enforce`` and ``--ros-args --enclave /robot_rl/<executable>``; with
``ROS_SECURITY_ENABLE=true`` in the environment, ``robot-rl up`` and the launch files pass the
enclave of each node themselves (:func:`enclave_of`). The Fast DDS
in the ROS 2 pip wheels is built without the DDS security plugins, so these files could be
generated and checked (certificate chain, S/MIME signatures with openssl) but not exercised by
a running graph here; see docs/security.md.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional
from xml.sax.saxutils import escape

from robot_rl import topics as T

ENCLAVE_ROOT = "/robot_rl"
DOMAINS = (0, 232)  # every valid ROS_DOMAIN_ID

SENSORS = [T.JOINT_STATES, T.EE_POSE, T.EE_TWIST, T.OBJECT_POSE,
           T.camera_image_topic("*"), T.camera_info_topic("*"), T.tactile_topic("*"), T.CLOCK]
COMMANDS = [T.EE_TARGET, T.JOINT_TARGET, T.GRIPPER_TARGET]
TOKEN = T.COMMAND_TOKEN
CONTROLLER_SERVICES = T.CONTROLLER_SERVICES

# enclave -> what its node(s) publish, subscribe to, serve and call (ROS names; '*' matches
# within DDS topic names). Composed processes (the sim) hold all their nodes' rights.
POLICY: Dict[str, Dict[str, List[str]]] = {
    # sim.rehearsal: the simulated operator in the sim process presses the joy pad
    "mujoco_sim": {"publish": SENSORS + [T.DRIVER_STATUS, T.JOY],
                   "subscribe": COMMANDS + [TOKEN, T.RESET_STATE],
                   "serve": [T.SCENE_RESET, T.tactile_zero_service("*")], "call": []},
    "joint_driver": {"publish": [T.JOINT_STATES, T.EE_POSE, T.EE_TWIST,
                                 T.DRIVER_STATUS, T.EFFORT_COMMANDS,
                                 T.GRIPPER_COMMANDS],
                     "subscribe": COMMANDS + [T.HARDWARE_JOINT_STATES], "serve": [],
                     "call": []},
    "camera": {"publish": [T.camera_image_topic("*"), T.camera_info_topic("*")], "subscribe": [],
               "serve": [], "call": []},
    "tactile": {"publish": [T.tactile_topic("*")], "subscribe": [], "serve": [T.tactile_zero_service("*")],
                "call": []},
    "learner": {"publish": [T.ACTOR_WEIGHTS, T.LEARNER_STATUS, T.TRANSITION_ACKS],
                "subscribe": [T.TRANSITIONS, T.EPISODE_EVENT, T.ACTOR_STATUS],
                "serve": [], "call": []},
    "actor": {"publish": [T.TRANSITIONS, T.EPISODE_EVENT, T.ACTOR_STATUS, TOKEN]
              + COMMANDS,
              "subscribe": [T.ACTOR_WEIGHTS, T.TRANSITION_ACKS, T.INTERVENTION, T.RESET_STATE,
                            T.TASK_SUCCESS] + SENSORS, "serve": [], "call": [T.SCENE_RESET]},
    "intervention": {"publish": [T.INTERVENTION],
                     "subscribe": [T.EE_POSE, T.OBJECT_POSE, T.JOINT_STATES,
                                   T.EPISODE_EVENT, T.JOY], "serve": [], "call": []},
    "reset": {"publish": [T.EE_TARGET, T.GRIPPER_TARGET, T.RESET_STATE],
              "subscribe": [T.EE_POSE, T.INTERVENTION, TOKEN],
              "serve": [T.SCENE_RESET, T.SCENE_CONFIRM], "call": []},
    "reward": {"publish": [T.TASK_SUCCESS, T.TASK_REWARD, T.TASK_SUCCESS_PROBABILITY],
               "subscribe": [T.camera_image_topic("*"), T.OBJECT_POSE, T.EE_POSE,
                             T.INTERVENTION, T.EPISODE_EVENT],
               "serve": [T.REWARD_SAVE], "call": []},
    "controller": {"publish": [T.EE_TARGET, T.GRIPPER_TARGET,
                               T.CONTROLLER_STATUS], "subscribe": SENSORS + [TOKEN],
                   "serve": CONTROLLER_SERVICES, "call": [T.SCENE_RESET]},
    "operator": {"publish": [TOKEN], "subscribe": [T.LEARNER_STATUS, T.ACTOR_STATUS,
                                                   T.CONTROLLER_STATUS, T.EPISODE_EVENT,
                                                   T.DRIVER_STATUS, T.RESET_STATE],
                 "serve": [], "call": CONTROLLER_SERVICES + [T.SCENE_RESET, T.SCENE_CONFIRM,
                                                             T.REWARD_SAVE, T.tactile_zero_service("*")]},
}

GOVERNANCE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-Security/20170801/omg_shared_ca_governance.xsd">
  <domain_access_rules>
    <domain_rule>
      <domains><id_range><min>{lo}</min><max>{hi}</max></id_range></domains>
      <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
      <enable_join_access_control>true</enable_join_access_control>
      <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
      <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
      <rtps_protection_kind>SIGN</rtps_protection_kind>
      <topic_access_rules>
        <topic_rule>
          <topic_expression>*</topic_expression>
          <enable_discovery_protection>true</enable_discovery_protection>
          <enable_liveliness_protection>true</enable_liveliness_protection>
          <enable_read_access_control>true</enable_read_access_control>
          <enable_write_access_control>true</enable_write_access_control>
          <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
          <data_protection_kind>ENCRYPT</data_protection_kind>
        </topic_rule>
      </topic_access_rules>
    </domain_rule>
  </domain_access_rules>
</dds>
"""


def enclave_of(executable: str) -> str:
    """The enclave a node process of ``robot_rl.graph`` runs in (its executable's name)."""
    if executable not in POLICY:
        raise ValueError(f"no SROS2 policy for executable {executable!r}; add it to POLICY")
    return f"{ENCLAVE_ROOT}/{executable}"


def security_enabled(env=None) -> bool:
    """``ROS_SECURITY_ENABLE=true``: rcl then needs an enclave for every node."""
    return (env if env is not None else os.environ).get("ROS_SECURITY_ENABLE", "") == "true"


def dds_names(enclave: str, rules: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """ROS names -> DDS topic names (``rt/`` topics, ``rq/..Request``/``rr/..Reply`` for
    services), plus what every rclpy node needs (rosout, parameter events and services,
    rmw discovery info)."""
    node = enclave.rsplit("/", 1)[-1]
    pub = {f"rt{t}" for t in rules["publish"]} | {f"rr{s}Reply" for s in rules["serve"]} \
        | {f"rq{s}Request" for s in rules["call"]}
    sub = {f"rt{t}" for t in rules["subscribe"]} | {f"rq{s}Request" for s in rules["serve"]} \
        | {f"rr{s}Reply" for s in rules["call"]}
    pub |= {"rt/rosout", "rt/parameter_events", "ros_discovery_info", f"rr/{node}*/*",
            f"rr/{node}_*/*"}
    sub |= {"rt/parameter_events", "ros_discovery_info", f"rq/{node}*/*"}
    return {"publish": sorted(pub), "subscribe": sorted(sub)}


def permissions_xml(enclave: str, rules: Dict[str, List[str]], not_before: datetime.datetime,
                    not_after: datetime.datetime) -> str:
    names = dds_names(enclave, rules)

    def block(kind: str) -> str:
        topics = "".join(f"\n            <topic>{escape(t)}</topic>" for t in names[kind])
        return f"""
        <{kind}>
          <topics>{topics}
          </topics>
        </{kind}>"""

    fmt = "%Y-%m-%dT%H:%M:%S"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-Security/20170801/omg_shared_ca_permissions.xsd">
  <permissions>
    <grant name="{escape(enclave)}">
      <subject_name>CN={escape(enclave)}</subject_name>
      <validity>
        <not_before>{not_before.strftime(fmt)}</not_before>
        <not_after>{not_after.strftime(fmt)}</not_after>
      </validity>
      <allow_rule>
        <domains><id_range><min>{DOMAINS[0]}</min><max>{DOMAINS[1]}</max></id_range></domains>{block("publish")}{block("subscribe")}
      </allow_rule>
      <default>DENY</default>
    </grant>
  </permissions>
</dds>
"""


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _link(path: Path, target: str) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)


def _smime_sign(data: bytes, cert, key) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    return (pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(cert, key, hashes.SHA256())
            .sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature,
                                                 pkcs7.PKCS7Options.Text]))


def _certificate(subject: str, public_key, issuer_name, issuer_key, ca: bool, days: int):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer_name if issuer_name is not None else name)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                              critical=True))
    return builder.sign(issuer_key, hashes.SHA256())


def create_keystore(root: str | os.PathLike, enclaves: Optional[Iterable[str]] = None,
                    days: int = 3650) -> List[str]:
    """Write (or extend) an SROS2 keystore; returns the enclave paths written. Refuses to
    replace an existing CA."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    root = Path(root)
    pem = serialization.Encoding.PEM
    ca_key_path, ca_cert_path = root / "private" / "ca.key.pem", root / "public" / "ca.cert.pem"
    if ca_cert_path.exists():
        from cryptography import x509
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _certificate("robot_rl sros2 CA", ca_key.public_key(), None, ca_key, True, days)
        _write(ca_key_path, ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), 0o600)
        os.chmod(root / "private", 0o700)
        _write(ca_cert_path, ca_cert.public_bytes(pem))
        for role in ("identity_ca", "permissions_ca"):  # one CA for both, like SROS2's default
            _link(root / "private" / f"{role}.key.pem", "ca.key.pem")
            _link(root / "public" / f"{role}.cert.pem", "ca.cert.pem")
    governance = GOVERNANCE.format(lo=DOMAINS[0], hi=DOMAINS[1]).encode()
    _write(root / "enclaves" / "governance.xml", governance)
    governance_p7s = _smime_sign(governance, ca_cert, ca_key)
    _write(root / "enclaves" / "governance.p7s", governance_p7s)
    written = []
    now = datetime.datetime.now(datetime.timezone.utc)
    for name in (list(enclaves) if enclaves is not None else list(POLICY)):
        if name not in POLICY:
            raise ValueError(f"unknown enclave {name!r}; expected one of {sorted(POLICY)}")
        enclave = f"{ENCLAVE_ROOT}/{name}"
        folder = root / "enclaves" / enclave.lstrip("/")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(enclave, key.public_key(), ca_cert.subject, ca_key, False, days)
        _write(folder / "key.pem", key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()), 0o600)
        _write(folder / "cert.pem", cert.public_bytes(pem))
        _write(folder / "identity_ca.cert.pem", ca_cert.public_bytes(pem))
        _write(folder / "permissions_ca.cert.pem", ca_cert.public_bytes(pem))
        _write(folder / "governance.p7s", governance_p7s)
        perms = permissions_xml(enclave, POLICY[name], now,
                                now + datetime.timedelta(days=days)).encode()
        _write(folder / "permissions.xml", perms)
        _write(folder / "permissions.p7s", _smime_sign(perms, ca_cert, ca_key))
        written.append(enclave)
    return written
