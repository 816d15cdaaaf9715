"""Tasks by name: the registry ``task.name`` is resolved through (ROS-free).

Kept apart from ``robot_rl.envs.task`` so that the simulator (scene description, world), which
the task module's scripted experts build on, can ask for the configured task's scene hooks
without importing the task module: modules are named here as strings and imported on demand,
the way a plug-in (an entry point of the ``robot_rl.tasks`` group) is.
"""
from __future__ import annotations

import importlib

from robot_rl.schema import ConfigError

TASKS: dict[str, type] = {}
#: Tasks that ship with robot_rl, imported when named (each registers itself).
BUILTIN_TASKS = {"pick_cube": "robot_rl.envs.task", "peg_insert": "robot_rl.tasks.peg_insert"}
TASK_BASE = "robot_rl.envs.task"


def task_base() -> type:
    """``robot_rl.envs.task.Task``, the class every task derives from."""
    return importlib.import_module(TASK_BASE).Task


def register_task(name: str):
    """Class decorator: ``@register_task("my_task")`` makes ``task.name: my_task`` select it."""
    def register(cls):
        TASKS[name] = cls
        cls.name = name
        return cls
    return register


def task_class(name: str) -> type:
    """The task class ``task.name`` names (a registered name, ``package.module:ClassName`` or
    an entry point of the ``robot_rl.tasks`` group), or a ConfigError (a ValueError) saying
    what was tried."""
    if name not in TASKS and name in BUILTIN_TASKS:
        importlib.import_module(BUILTIN_TASKS[name])
    if name in TASKS:
        return TASKS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"task.name {name!r}: cannot load {attr!r} from module "
                              f"{module_name!r} ({exc})") from exc
    else:
        from importlib.metadata import entry_points
        found = [ep for ep in entry_points(group="robot_rl.tasks") if ep.name == name]
        if not found:
            raise ConfigError(f"unknown task.name {name!r}; expected one of "
                              f"{sorted(set(TASKS) | set(BUILTIN_TASKS))}, "
                              f"'package.module:ClassName', or an entry point of the "
                              f"'robot_rl.tasks' group")
        cls = found[0].load()
    if not (isinstance(cls, type) and issubclass(cls, task_base())):
        raise ConfigError(f"task.name {name!r} is {cls!r}, not a subclass of "
                          f"robot_rl.envs.task.Task")
    return cls
