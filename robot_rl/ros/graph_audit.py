"""Which nodes of the running graph depend on simulator privileges: read from the live ROS graph
(DDS discovery), not from the configuration.

A node is listed when it subscribes to or publishes a topic under ``/sim/``, serves or calls a
service under ``/sim/``, or calls a service that the simulator node (``mujoco_sim``) serves
(its teleport ``/scene/reset``). ROS's own per-node services (parameters, type descriptions)
are not links to the simulator. Nothing is exempt by name: the rehearsal's simulated operator
passes only because it has no such link.

    robot-rl audit-graph          # prints the links; exit code 1 when there are any
"""
from __future__ import annotations

import sys
import time

from robot_rl.ros import messages as m

SIM_NODE = "mujoco_sim"
# ROS 2's own services every node offers; calling them says nothing about simulator state.
_INFRASTRUCTURE_SERVICE_PREFIXES = ("rcl_interfaces/srv/", "type_description_interfaces/srv/")


def _full(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


def _sim_only(name: str) -> bool:
    return name.startswith(m.SIM_ONLY_PREFIX)


def privileged_links(node, exclude_self: bool = True) -> list[str]:
    """``"<node>: <relation> <name>"`` for every link to simulator privileges in the graph
    ``node`` sees now (sorted; [] when there is none). ``exclude_self``: leave out ``node``
    (the one asking, which subscribes to nothing)."""
    graph_nodes = sorted(set(node.get_node_names_and_namespaces()))
    me = (node.get_name(), node.get_namespace())
    sim_services = set()
    for name, namespace in graph_nodes:
        if name == SIM_NODE:
            try:
                served = node.get_service_names_and_types_by_node(name, namespace)
            except Exception:  # the node left the graph between the two queries
                served = []
            sim_services.update(service for service, types in served
                                if not any(t.startswith(_INFRASTRUCTURE_SERVICE_PREFIXES) for t in types))
    links = []
    for name, namespace in graph_nodes:
        if exclude_self and (name, namespace) == me:
            continue
        who = _full(namespace, name)
        queries = (
            ("subscribes", node.get_subscriber_names_and_types_by_node, _sim_only),
            ("publishes", node.get_publisher_names_and_types_by_node, _sim_only),
            ("serves", node.get_service_names_and_types_by_node, _sim_only),
            ("calls", node.get_client_names_and_types_by_node,
             lambda s, n=name: _sim_only(s) or (s in sim_services and n != SIM_NODE)),
        )
        for relation, query, privileged in queries:
            try:
                entries = query(name, namespace)
            except Exception:  # the node left the graph between the two queries
                continue
            links += [f"{who}: {relation} {entry}" for entry, _ in entries if privileged(entry)]
    return sorted(set(links))


def wait_for_nodes(node, names, timeout: float = 30.0) -> list[str]:
    """Block until every node in ``names`` is discovered (or ``timeout``); the missing ones."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {n for n, _ in node.get_node_names_and_namespaces()}
        missing = sorted(set(names) - seen)
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.1)


def main(argv=None) -> int:
    import argparse
    import rclpy

    p = argparse.ArgumentParser(prog="robot-rl audit-graph",
                                description="List the running graph's links to simulator "
                                            "privileges (0: none, 1: some).")
    p.add_argument("--settle", type=float, default=3.0, help="s of discovery before reading")
    args = p.parse_args(argv)
    from robot_rl.cli import local_ros_defaults
    local_ros_defaults()
    rclpy.init()
    try:
        node = rclpy.create_node("graph_audit")
        time.sleep(args.settle)  # discovery is asynchronous: give DDS a moment
        links = privileged_links(node)
        nodes = len(node.get_node_names_and_namespaces())
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    for link in links:
        print(link)
    print(f"[graph_audit] {len(links)} link(s) to simulator privileges among {nodes} nodes",
          file=sys.stderr)
    return 1 if links else 0


if __name__ == "__main__":
    raise SystemExit(main())
