"""The node graph, described once: the CLI starts it as processes, the launch files as
launch_ros Nodes. Both read the same configuration file, so they start the same graph."""
from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.config import Config
from robot_rl.schema import ConfigError


@dataclass
class NodeSpec:
    name: str          # ROS node name (unique in the graph)
    executable: str    # console script, as `ros2 run robot_rl <executable>` finds it
    module: str        # python module with main(), how the CLI starts it without ROS tools
    parameters: dict = field(default_factory=dict)
    # A composed process hosts several nodes with names of their own (the sim: mujoco_sim,
    # joint_driver, camera_*, tactile_*); renaming it would rename all of them.
    composed: bool = False


def launch_node_arguments(spec: NodeSpec, env=None) -> dict:
    """The keyword arguments of ``launch_ros.actions.Node`` for ``spec``: what every launch
    file of the package starts a robot_rl node with. A composed process keeps the names of the
    nodes it hosts; with SROS2 on (``ROS_SECURITY_ENABLE=true``) each process runs in its enclave
    (docs/security.md), and an executable without a policy is an error naming it."""
    from robot_rl.sros2 import enclave_of, security_enabled
    kwargs = {"package": "robot_rl", "executable": spec.executable, "output": "screen",
              "parameters": [spec.parameters], "emulate_tty": True}
    if not spec.composed:
        kwargs["name"] = spec.name
    if security_enabled(env):
        kwargs["ros_arguments"] = ["--enclave", enclave_of(spec.executable)]
    return kwargs


def robot_nodes(cfg: Config, config_file: str) -> list[NodeSpec]:
    """Hardware contract: the MuJoCo stand-in, or one driver/camera/tactile process each."""
    base = {"config_file": config_file}
    nodes: list[NodeSpec] = []
    if cfg.driver.adapter == "sim":
        nodes.append(NodeSpec("mujoco_sim", "mujoco_sim", "robot_rl.ros.sim_node", dict(base),
                              composed=True))
    else:
        nodes.append(NodeSpec("joint_driver", "joint_driver", "robot_rl.ros.joint_driver_node",
                              dict(base)))
    for cam in cfg.cameras:
        if cam.backend != "sim":
            nodes.append(NodeSpec(f"camera_{cam.name}", "camera", "robot_rl.ros.camera_node",
                                  {**base, "camera": cam.name}))
    for sensor in cfg.tactile:
        if sensor.backend != "sim":
            nodes.append(NodeSpec(f"tactile_{sensor.name}", "tactile", "robot_rl.ros.tactile_node",
                                  {**base, "tactile": sensor.name}))
    return nodes


def training_nodes(cfg: Config, config_file: str, actors: int = 1) -> list[NodeSpec]:
    """HIL-SERL online learning: learner, actor(s), the intervention source, and on a real
    robot or in the rehearsal the reset node (the plain sim serves /scene/reset itself)."""
    base = {"config_file": config_file}
    nodes = [NodeSpec("learner", "learner", "robot_rl.ros.learner_node", dict(base))]
    for actor_id in range(actors):
        nodes.append(NodeSpec(f"actor_{actor_id}", "actor", "robot_rl.ros.actor_node",
                              {**base, "actor.actor_id": actor_id}))
    if cfg.hil.device != "none":
        nodes.append(NodeSpec("intervention", "intervention", "robot_rl.ros.intervention_node",
                              dict(base)))
    nodes += reset_nodes(cfg, config_file)
    reward = cfg.hil.reward
    if reward.record_dir or (reward.source == "classifier" and reward.model):
        nodes.append(NodeSpec("reward", "reward", "robot_rl.ros.reward_node", dict(base)))
    return nodes


def reset_nodes(cfg: Config, config_file: str) -> list[NodeSpec]:
    """The reset node where nothing else serves /scene/reset: a real robot, or the stand-in in
    rehearsal (sim.rehearsal), which behaves like one."""
    if cfg.driver.adapter == "sim" and not cfg.sim.rehearsal:
        return []
    return [NodeSpec("reset", "reset", "robot_rl.ros.reset_node", {"config_file": config_file})]


def demonstration_nodes(cfg: Config, config_file: str) -> list[NodeSpec]:
    """What ``robot-rl record-demos --device ...`` drives the robot through: the intervention
    node (the person's device -> /intervention/action) and the reset node where needed. No
    teleop node: the recorder itself sends the person's actions to the arm, as an actor would."""
    if cfg.hil.device == "none" or (cfg.hil.device == "sim_human"
                                    and (cfg.driver.adapter != "sim" or cfg.sim.rehearsal)):
        raise ConfigError(f"the demos profile records a person's device: set hil.device to "
                          f"spacemouse, gamepad, keyboard or joy (it is {cfg.hil.device}; "
                          f"sim_human only on the plain MuJoCo stand-in)")
    base = {"config_file": config_file}
    return [NodeSpec("intervention", "intervention", "robot_rl.ros.intervention_node",
                     dict(base))] + reset_nodes(cfg, config_file)


def deployment_nodes(cfg: Config, config_file: str) -> list[NodeSpec]:
    return [NodeSpec("controller", "controller", "robot_rl.ros.controller_node",
                     {"config_file": config_file})]


def standin_hardware_nodes(cfg: Config, config_file: str) -> list[NodeSpec]:
    """A MuJoCo arm behind the ros2_control topics (``driver.*_topic``), for testing the
    ``joint_driver`` path without a robot; never part of a profile (a real arm is the hardware)."""
    return [NodeSpec("standin_hardware", "standin_hardware", "robot_rl.ros.standin_hardware_node",
                     {"config_file": config_file})]


def teleop_nodes(cfg: Config, config_file: str) -> list[NodeSpec]:
    """The intervention device moving the arm directly (robot_rl/ros/teleop_node.py)."""
    if cfg.hil.device == "sim_human" and cfg.driver.adapter != "sim":
        # It would drive a real arm from a scripted expert that reads the simulator's state.
        raise ConfigError("the teleop profile on a real robot needs a person's device: set "
                         "hil.device to spacemouse, gamepad, keyboard or joy (it is sim_human)")
    base = {"config_file": config_file}
    nodes = [NodeSpec("teleop", "teleop", "robot_rl.ros.teleop_node", dict(base))]
    if cfg.hil.device != "none":
        nodes.append(NodeSpec("intervention", "intervention", "robot_rl.ros.intervention_node",
                              dict(base)))
    return nodes


def gazebo_nodes(cfg: Config, config_file: str) -> list[NodeSpec]:
    """What launch/gazebo.launch.py adds to a profile: the adapter turning Gazebo's pad contacts
    into the tactile topics and placing the object when the reset node awaits the human
    (robot_rl/ros/gazebo_adapter_node.py). Gazebo itself, the bridge and the controllers are
    other packages' nodes (robot_rl/sim/gazebo.py: launch_plan)."""
    return [NodeSpec("gazebo_adapter", "gazebo_adapter", "robot_rl.ros.gazebo_adapter_node",
                     {"config_file": config_file}, composed=True)]


def isaac_nodes(cfg: Config, config_file: str) -> list[NodeSpec]:
    """What runs beside the Isaac Sim app (sim/isaac/app.py): the adapter that puts the object
    back through the ROS 2 simulation interfaces when the reset node awaits the human."""
    return [NodeSpec("isaac_adapter", "isaac_adapter", "robot_rl.ros.isaac_adapter_node",
                     {"config_file": config_file})]


SIMULATOR_NODES = {"gazebo": gazebo_nodes, "isaac": isaac_nodes}


def simulator_graph(cfg: Config, config_file: str, profile: str, simulator: str) -> list[NodeSpec]:
    """The profile's nodes plus the simulator's adapter, all on the simulator's /clock
    (``use_sim_time``): what launch/gazebo.launch.py and launch/isaac.launch.py start."""
    if simulator not in SIMULATOR_NODES:
        raise ValueError(f"unknown simulator {simulator!r}; expected one of {sorted(SIMULATOR_NODES)}")
    nodes = graph(cfg, config_file, profile) + SIMULATOR_NODES[simulator](cfg, config_file)
    for spec in nodes:
        spec.parameters["use_sim_time"] = True
    return nodes


def recorder_node(config_file: str, output: str) -> NodeSpec:
    """The MCAP recorder (robot_rl/ros/recorder_node.py) writing ``output``."""
    return NodeSpec("recorder", "recorder", "robot_rl.ros.recorder_node",
                    {"config_file": config_file, "output": output})


PROFILES = {
    "robot": lambda cfg, path: robot_nodes(cfg, path),
    "train": lambda cfg, path: robot_nodes(cfg, path) + training_nodes(cfg, path),
    "deploy": lambda cfg, path: robot_nodes(cfg, path) + deployment_nodes(cfg, path),
    "teleop": lambda cfg, path: robot_nodes(cfg, path) + teleop_nodes(cfg, path),
    "demos": lambda cfg, path: robot_nodes(cfg, path) + demonstration_nodes(cfg, path),
}


def graph(cfg: Config, config_file: str, profile: str = "robot") -> list[NodeSpec]:
    if profile not in PROFILES:
        raise ValueError(f"unknown graph profile {profile!r}; expected one of {sorted(PROFILES)}")
    return PROFILES[profile](cfg, config_file)
