"""Every topic and service name of the graph, in one place and free of ROS imports, so the
ROS-free modules (MCAP recording, SROS2 policies, reports) name the same topics as the nodes.
Message types and QoS live beside them in :mod:`robot_rl.ros.messages`; a name configured by
the user (``hil.topic``, ``hil.reward.success_topic``, ``driver.*_topic``...) lives in its config
field instead. Everything only a simulator has is under ``/sim/``."""

# -- the robot contract (sensors, commands, driver) ----------------------------------------------
JOINT_STATES = "/joint_states"
EE_POSE = "/robot/ee_pose"
EE_TWIST = "/robot/ee_twist"
EE_TARGET = "/robot/ee_target"
JOINT_TARGET = "/robot/joint_target"
GRIPPER_TARGET = "/robot/gripper_target"
DRIVER_STATUS = "/robot/status"
CLOCK = "/clock"
DIAGNOSTICS = "/diagnostics"
SCENE_RESET = "/scene/reset"
SCENE_CONFIRM = "/scene/confirm"  # the person confirms the re-arranged scene (reset node)
# The reset node's state (std_msgs/String JSON {"state", "resets", "stamp"}; RESET_STATE_QOS,
# subscribers RESET_STATE_LISTEN_QOS).
RESET_STATE = "/scene/reset_state"
# Simulator-only names (topics and services a real robot cannot offer) all start with this, so
# the graph audit (robot_rl/ros/graph_audit.py) can find every node that depends on one.
SIM_ONLY_PREFIX = "/sim/"
OBJECT_POSE = SIM_ONLY_PREFIX + "object_pose"  # simulator state: never on a real robot
FIXTURES_PREFIX = SIM_ONLY_PREFIX + "fixtures/"  # a task's fixtures (Task.scene), one pose each


def fixture_topic(name: str) -> str:
    """The pose (geometry_msgs/PoseStamped) of the task's fixture ``name``: simulator state."""
    return FIXTURES_PREFIX + name


def camera_image_topic(name: str) -> str:
    return f"/camera/{name}/image_raw"


def camera_info_topic(name: str) -> str:
    return f"/camera/{name}/camera_info"


def tactile_topic(name: str) -> str:
    return f"/tactile/{name}/image"


def tactile_zero_service(name: str) -> str:
    return f"/tactile/{name}/zero"


# -- hardware behind a ros2_control driver (the defaults of driver.*_topic) -------------------------
HARDWARE_JOINT_STATES = "/hardware/joint_states"
EFFORT_COMMANDS = "/effort_controller/commands"
GRIPPER_COMMANDS = "/gripper_controller/commands"
STANDIN_STATUS = "/standin_hardware/status"  # the ros2_control stand-in's own status

# -- task success (the defaults of hil.reward.*_topic) and the person's pad -----------------------
TASK_SUCCESS = "/task/success"
TASK_REWARD = "/task/reward"
TASK_SUCCESS_PROBABILITY = "/task/success_probability"
JOY = "/joy"  # sensor_msgs/Joy of the ROS joy node (the default of hil.joy.topic)
WORKSPACE_BOX = "/robot_rl/workspace_box"  # the safety box as RViz markers (bringup)

# -- learning traffic -------------------------------------------------------------------------------
TRANSITIONS = "/rl/transitions"  # transition batches, actors -> learner
ACTOR_WEIGHTS = "/rl/actor_weights"  # actor weights, learner -> actors
TRANSITION_ACKS = "/rl/transition_acks"  # durable counts, learner -> actors
LEARNER_STATUS = "/rl/learner_status"
ACTOR_STATUS = "/rl/actor_status"
EPISODE_EVENT = "/episode/event"  # robot_rl.hil.episode.EpisodeStateMachine events
INTERVENTION = "/intervention/action"  # the default of hil.topic
REWARD_SAVE = "/reward/save"  # the reward node's "save the labelled frames now"

# -- the deployed controller ---------------------------------------------------------------------------
CONTROLLER_STATUS = "/controller/status"
ENGAGE = "/controller/engage"
DISENGAGE = "/controller/disengage"
DEACTIVATE = "/controller/deactivate"
ESTOP = "/controller/estop"
RESET_ESTOP = "/controller/reset_estop"
CONTROLLER_SERVICES = [ENGAGE, DISENGAGE, DEACTIVATE, ESTOP, RESET_ESTOP]

# -- security ------------------------------------------------------------------------------------------
COMMAND_TOKEN = "/security/command_token"  # operator-signed tokens for restricted services
