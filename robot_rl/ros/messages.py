"""The robot topic contract: every robot topic name, message type and QoS profile, the
numpy <-> ROS 2 message conversions, and the one messages -> ``Snapshot`` reader.

Every node and the ROS Gymnasium environment take topic names and QoS from here, and turn robot
messages into the task's :class:`~robot_rl.envs.task.Snapshot` only through
:func:`input_topic` / :func:`decode_input` / :func:`snapshot_from_inputs`, so the controller,
the environment, the simulated human and the scripted reward read the same contract the same
way. How fresh an input must be stays each consumer's own rule (the environment waits for a new
control period, the controller takes the newest sample at its tick, the simulated human decides
once per period).

Only standard message packages are used. Tactile taxel grids travel as ``sensor_msgs/Image``
with encoding ``32FC1`` (one float32 per taxel, newtons, row-major, rows = image height);
optical tactile sensors use ``rgb8`` like cameras.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState

# -- the topic contract (names: robot_rl/topics.py; docs/architecture.md lists them) ----------
from robot_rl.topics import (CLOCK, DRIVER_STATUS, EE_POSE, EE_TARGET, EE_TWIST,  # noqa: F401
                             GRIPPER_TARGET, JOINT_STATES, JOINT_TARGET, OBJECT_POSE, RESET_STATE,
                             SCENE_RESET, SIM_ONLY_PREFIX, camera_image_topic, camera_info_topic,
                             fixture_topic, tactile_topic, tactile_zero_service)

# Sensor streams: keep only the newest sample, never block the publisher on a slow reader.
SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
# Commands: reliable, small queue so a burst is not silently dropped.
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE)


def to_time(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_time(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


# -- robot inputs -> Snapshot: the one reader --------------------------------------------------
# Inputs are named as the controller's watchdog and the task's observation keys name them:
# joint_states, ee_pose, ee_twist, object, tactile_<sensor>, image_<camera>, fixture_<name>.
_IMAGE_DTYPES = {"tactile_": np.float32, "image_": np.uint8}
_Snapshot = None  # robot_rl.envs.task.Snapshot, see snapshot_from_inputs


def input_topic(name: str) -> tuple[type, str]:
    """(message type, topic) of the robot input ``name``."""
    fixed = {"joint_states": (JointState, JOINT_STATES), "ee_pose": (PoseStamped, EE_POSE),
             "ee_twist": (TwistStamped, EE_TWIST), "object": (PoseStamped, OBJECT_POSE)}
    if name in fixed:
        return fixed[name]
    if name.startswith("tactile_"):
        return Image, tactile_topic(name[len("tactile_"):])
    if name.startswith("image_"):
        return Image, camera_image_topic(name[len("image_"):])
    if name.startswith("fixture_"):
        return PoseStamped, fixture_topic(name[len("fixture_"):])
    raise ValueError(f"unknown robot input {name!r}; expected joint_states, ee_pose, ee_twist, "
                     "object, tactile_<sensor>, image_<camera> or fixture_<name>")


def fixture_inputs(cfg, task) -> list[str]:
    """The ``fixture_<name>`` inputs of the configured scene's fixtures (``Task.scene``) when
    ``task`` reads them (``"fixtures"`` in ``task.privileged``), else []. Simulator state: a
    task that reads it is refused on a graph without it (``make_task``)."""
    if "fixtures" not in task.privileged:
        return []
    from robot_rl.sim.scene_description import scene_description
    return [f"fixture_{f.name}" for f in scene_description(cfg).fixtures]


def decode_input(name: str, msg, gripper_joints, check_dtype: bool = True) -> object:
    """The Snapshot field(s) of input ``name`` from its message: joint_states -> gripper opening
    (sum of ``gripper_joints``, matched by name), ee_pose -> (position, quaternion x, y, z, w),
    ee_twist -> 6-vector, object -> position, tactile_*/image_* -> array (float32 / uint8),
    fixture_* -> pose (x y z, qx qy qz qw).
    Raises ValueError naming the input and what was expected. ``check_dtype``: refuse a
    tactile image that is not float32 (32FC1) or a camera image that is not uint8 (the
    controller's inputs); the environment leaves that to the task's observation space."""
    if name == "joint_states":
        try:  # at a controller tick: list.index on the few names beats building a name map
            if len(msg.position) == len(msg.name):
                return float(sum(msg.position[msg.name.index(j)] for j in gripper_joints))
        except ValueError:
            pass
        try:  # the error names what is missing
            return float(np.sum(joint_positions_by_name(msg, list(gripper_joints))))
        except ValueError as exc:
            raise ValueError(f"{JOINT_STATES}: {exc}") from None
    if name == "ee_pose":
        return pose_from_msg(msg)
    if name == "ee_twist":
        return twist_from_msg(msg)
    if name == "object":
        return pose_from_msg(msg)[0]
    if name.startswith("fixture_"):
        return np.concatenate(pose_from_msg(msg))  # x y z, qx qy qz qw: Snapshot.fixtures
    for prefix, dtype in _IMAGE_DTYPES.items():
        if name.startswith(prefix):
            img = msg_to_image(msg)
            if check_dtype and img.dtype != dtype:
                raise ValueError(f"{name}: encoding {msg.encoding} gives {img.dtype}, "
                                 f"expected {np.dtype(dtype)}")
            return img
    input_topic(name)  # raises: unknown input
    raise AssertionError(name)


def snapshot_from_inputs(values, stamp: float):
    """A Snapshot from decoded inputs (``{name: decode_input(...)}``). ``ee_pose`` is required;
    without ``ee_twist`` the velocity is zero, without ``joint_states`` the opening is 0, without
    ``object`` there is no object position. ``stamp``: the instant the consumer assigns to it
    (the environment and controller use the ee_pose stamp)."""
    global _Snapshot
    if _Snapshot is None:  # imported on first use: the task module pulls in pinocchio
        from robot_rl.envs.task import Snapshot as _Snapshot
    pos, quat = values["ee_pose"]
    twist = values.get("ee_twist")
    snap = _Snapshot(stamp=stamp, ee_pos=pos, ee_quat=quat,
                    ee_vel=np.zeros(6) if twist is None else twist,
                    gripper_width=float(values.get("joint_states", 0.0)),
                    object_pos=values.get("object"))
    for name, value in values.items():
        if name.startswith("tactile_"):
            snap.tactile[name[len("tactile_"):]] = value
        elif name.startswith("image_"):
            snap.images[name[len("image_"):]] = value
        elif name.startswith("fixture_"):
            snap.fixtures[name[len("fixture_"):]] = value
    return snap


# -- images -----------------------------------------------------------------------------------
_ENCODINGS = {"rgb8": (np.uint8, 3), "mono8": (np.uint8, 1), "32FC1": (np.float32, 1)}


def image_to_msg(array: np.ndarray, stamp: float, frame_id: str, encoding: str) -> Image:
    dtype, channels = _ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    msg = Image()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels * array.itemsize
    msg.data = array.tobytes()
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    if msg.encoding not in _ENCODINGS:
        raise ValueError(f"image encoding {msg.encoding!r} is not supported; expected one of "
                         f"{sorted(_ENCODINGS)}")
    dtype, channels = _ENCODINGS[msg.encoding]
    expected = msg.height * msg.width * channels * np.dtype(dtype).itemsize
    if len(msg.data) != expected:
        raise ValueError(f"image has {len(msg.data)} bytes, expected {expected} for "
                         f"{msg.height}x{msg.width} {msg.encoding}")
    array = np.frombuffer(msg.data, dtype=dtype)
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return array.reshape(shape)


def camera_info_msg(K: np.ndarray, width: int, height: int, stamp: float, frame_id: str,
                    distortion: np.ndarray | None = None) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = width, height
    msg.distortion_model = "plumb_bob"
    msg.d = [float(v) for v in (distortion if distortion is not None else np.zeros(5))]
    msg.k = [float(v) for v in np.asarray(K, dtype=float).ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = [float(v) for v in P.ravel()]
    return msg


# -- robot state --------------------------------------------------------------------------
def joint_state_msg(names, position, velocity, effort, stamp: float) -> JointState:
    msg = JointState()
    msg.header.stamp = to_time(stamp)
    msg.name = list(names)
    msg.position = [float(v) for v in position]
    msg.velocity = [float(v) for v in velocity]
    msg.effort = [float(v) for v in effort]
    return msg


def joint_positions_by_name(msg: JointState, names: list[str]) -> np.ndarray:
    """Positions of ``names`` in that order; joints are matched by name, never by index."""
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ValueError(f"JointState lacks joints {missing}; it has {list(msg.name)}")
    if len(msg.position) != len(msg.name):
        raise ValueError(f"JointState has {len(msg.name)} names but {len(msg.position)} "
                         f"positions")
    return np.array([msg.position[index[n]] for n in names], dtype=float)


def pose_msg(position, quat_xyzw, stamp: float, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.x, q.y, q.z, q.w = (float(v) for v in quat_xyzw)
    return msg


def pose_from_msg(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def twist_msg(twist6, stamp: float, frame_id: str) -> TwistStamped:
    msg = TwistStamped()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    lin, ang = msg.twist.linear, msg.twist.angular
    lin.x, lin.y, lin.z, ang.x, ang.y, ang.z = (float(v) for v in twist6)
    return msg


def twist_from_msg(msg: TwistStamped) -> np.ndarray:
    lin, ang = msg.twist.linear, msg.twist.angular
    return np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z])


# -- Learning traffic ------------------------------------------------------------------------------
# The SERL/HIL-SERL graph's topics (learner, actors, HIL nodes): names, message types and QoS.
# Payloads of the UInt8MultiArray topics are ``robot_rl.transport`` frames (docs/crash_safety.md).
from sensor_msgs.msg import Joy  # noqa: E402  (this section is appended to the contract)
from std_msgs.msg import String, UInt8MultiArray  # noqa: E402

from robot_rl.topics import (ACTOR_STATUS, ACTOR_WEIGHTS, EPISODE_EVENT,  # noqa: E402
                             INTERVENTION, LEARNER_STATUS, TRANSITION_ACKS, TRANSITIONS)

LEARNING_TYPES = {TRANSITIONS: UInt8MultiArray, ACTOR_WEIGHTS: UInt8MultiArray,
                  TRANSITION_ACKS: UInt8MultiArray, LEARNER_STATUS: String, ACTOR_STATUS: String,
                  EPISODE_EVENT: String, INTERVENTION: Joy}

TRANSITIONS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
# Latched (depth 1, transient local): a subscriber that starts late still gets the newest message.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
WEIGHTS_QOS = LATCHED_QOS  # an actor that starts late still gets the newest weights
EVENT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                       reliability=ReliabilityPolicy.RELIABLE)
STATUS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE)
RESET_STATE_QOS = LATCHED_QOS  # an operator's UI that starts late still sees the reset state
# Subscribers keep 10: one that falls behind still sees every transition (moving ->
# awaiting_confirmation -> idle can come within one period), while a late joiner gets only the
# publisher's one latched sample, the current state.
RESET_STATE_LISTEN_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                    reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Human devices often publish best effort; a best-effort subscription accepts both kinds.
INTERVENTION_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                              reliability=ReliabilityPolicy.BEST_EFFORT)
