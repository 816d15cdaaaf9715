"""The live view: a running graph drawn in the browser with Rerun (``robot-rl view``).

Rerun's SDK ships its web viewer inside the ``rerun-sdk`` wheel: :func:`serve` starts the data
stream (gRPC, ``view.grpc_port``) and the viewer page (``view.web_port``) on this machine, and
the page reads the stream. Nothing is downloaded at run time.

What is drawn (entity paths, all under a ``ros_time`` timeline of the message stamps):

- ``world/robot/<link>``: the Panda's collision meshes (STL, from the same URDF pinocchio and
  MuJoCo use) placed by pinocchio forward kinematics of ``/joint_states`` (fingers included);
- ``world/tcp`` (axes) from ``/robot/ee_pose``, ``world/target`` (axes + point) from
  ``/robot/ee_target``, ``world/cube`` from ``/sim/object_pose``, ``world/workspace`` (the
  controller's box), ``world/table`` (the stand-in's table top);
- ``cameras/<name>``: the camera images; ``tactile/<name>``: taxel heatmaps (colour-mapped,
  enlarged; the scale adapts to the largest reading seen);
- ``episodes/return``, ``episodes/success_rate`` (of the last ``SUCCESS_WINDOW`` episodes),
  ``episodes/intervention_rate`` from ``/episode/event``; ``intervention/active`` from the
  intervention device's dead-man button; ``controller/latency_ms/{p50,p99}`` and the mode
  from ``/controller/status``; ``status``: a text panel with the latest of each.

This module is ROS-free (the node in ``robot_rl/ros/view_node.py`` feeds it), so it is tested
with plain arrays.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Mapping, Optional, Sequence

import numpy as np

SUCCESS_WINDOW = 20
CUBE_HALF = 0.025
_MESH_SUFFIXES = (".stl", ".obj", ".glb", ".gltf")


def rerun_binary() -> str:
    """The viewer/server executable that ships in the rerun-sdk wheel (package ``rerun_cli``)."""
    import os

    import rerun_cli

    path = os.path.join(os.path.dirname(rerun_cli.__file__), "rerun")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing or not executable; reinstall rerun-sdk")
    return path


def _listening(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class RobotModel:
    """The full robot (arm and fingers) with its collision geometry, placed by pinocchio FK."""

    def __init__(self, urdf: str):
        import pinocchio as pin

        from robot_rl.robot.description import _share_roots, resolve_urdf

        path = str(resolve_urdf(urdf))
        self._pin = pin
        self.model = pin.buildModelFromUrdf(path)
        self.data = self.model.createData()
        self.geometry = pin.buildGeomFromUrdf(self.model, path, pin.GeometryType.COLLISION,
                                              package_dirs=[str(r) for r in _share_roots()])
        self.geometry_data = pin.GeometryData(self.geometry)
        self.q = pin.neutral(self.model)
        self._q_index = {name: self.model.joints[self.model.getJointId(name)].idx_q
                         for name in self.model.names[1:]}

    def shapes(self) -> list[tuple[str, str, Any]]:
        """``(name, kind, payload)``: kind ``mesh`` (payload: file path and scale) or ``box``
        (payload: half sizes)."""
        out = []
        for obj in self.geometry.geometryObjects:
            mesh = obj.meshPath or ""
            if mesh.lower().endswith(_MESH_SUFFIXES):
                out.append((obj.name, "mesh", (mesh, np.asarray(obj.meshScale, float))))
            elif hasattr(obj.geometry, "halfSide"):
                out.append((obj.name, "box", np.asarray(obj.geometry.halfSide, float)))
        return out

    def place(self, names: Sequence[str], positions: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """World placement (translation, 3x3 rotation) of every geometry for these joint values
        (joints not named keep their last value)."""
        pin = self._pin
        for name, value in zip(names, positions):
            idx = self._q_index.get(name)
            if idx is not None:
                self.q[idx] = value
        pin.forwardKinematics(self.model, self.data, self.q)
        pin.updateGeometryPlacements(self.model, self.data, self.geometry, self.geometry_data)
        return {obj.name: (self.geometry_data.oMg[i].translation.copy(), self.geometry_data.oMg[i].rotation.copy())
                for i, obj in enumerate(self.geometry.geometryObjects)}


def heatmap(taxels: np.ndarray, scale: float, pixels: int = 24) -> np.ndarray:
    """Taxel readings (rows x cols, >= 0) as an RGB image, each taxel ``pixels`` wide."""
    import cv2

    levels = np.clip(np.asarray(taxels, np.float32) / max(scale, 1e-9), 0.0, 1.0)
    grey = (levels * 255).astype(np.uint8)
    big = np.kron(grey, np.ones((pixels, pixels), np.uint8))
    return cv2.applyColorMap(big, cv2.COLORMAP_INFERNO)[..., ::-1].copy()


class LiveView:
    """Logs the graph's state into one Rerun recording stream."""

    def __init__(self, cfg, recording=None, robot: Optional[RobotModel] = None):
        import rerun as rr

        self.rr = rr
        self.cfg = cfg
        self.rec = recording or rr.RecordingStream("robot_rl", recording_id=f"live-{time.time_ns()}")
        self.robot = robot or RobotModel(cfg.robot.urdf)
        self._shapes = self.robot.shapes()
        self._mesh_scale = {name: payload[1] for name, kind, payload in self._shapes
                            if kind == "mesh" and not np.allclose(payload[1], 1.0)}
        self.camera_names = [c.name for c in cfg.cameras]
        self.tactile_names = [t.name for t in cfg.tactile]
        self._tactile_scale = {name: 1e-3 for name in self.tactile_names}
        self._outcomes: collections.deque[bool] = collections.deque(maxlen=SUCCESS_WINDOW)
        self.state: dict[str, Any] = {"mode": "-", "intervention": False, "episodes": 0,
                                      "success_rate": None, "last_return": None, "latency_p99_ms": None}
        self.counts: collections.Counter[str] = collections.Counter()
        self.last_stamp: Optional[float] = None  # newest message stamp seen (sim or robot time)

    # -- serving -------------------------------------------------------------------------------
    def blueprint(self):
        import rerun.blueprint as rrb

        sensors = [rrb.Spatial2DView(origin=f"cameras/{n}", name=f"camera {n}") for n in self.camera_names]
        sensors += [rrb.Spatial2DView(origin=f"tactile/{n}", name=f"tactile {n}") for n in self.tactile_names]
        right = rrb.Vertical(
            rrb.Grid(*sensors, grid_columns=max(1, min(4, len(sensors)))),
            rrb.Horizontal(rrb.TimeSeriesView(origin="episodes", name="episodes"),
                           rrb.TimeSeriesView(origin="controller", name="controller latency")),
            rrb.Horizontal(rrb.TextDocumentView(origin="status", name="status"),
                           rrb.TimeSeriesView(origin="intervention", name="intervention")),
            row_shares=[2, 1.2, 1])
        return rrb.Blueprint(rrb.Horizontal(rrb.Spatial3DView(origin="world", name="robot"), right,
                                            column_shares=[1, 1.3]), collapse_panels=True)

    def serve(self, open_browser: bool = False, timeout_s: float = 30.0) -> str:
        """Start Rerun's server (its gRPC data stream and the web viewer page, both bound to
        ``view.host``), connect this stream to it; returns the page's URL.

        The server is the ``rerun`` binary of the rerun-sdk wheel in a child process: the SDK's
        in-process ``serve_grpc``/``serve_web_viewer`` listen on every interface (0.0.0.0),
        the binary takes ``--bind``."""
        import subprocess
        import urllib.parse
        import webbrowser

        v = self.cfg.view
        self._server = subprocess.Popen(
            [rerun_binary(), "--serve-web", "--bind", v.host, "--port", str(v.grpc_port),
             "--web-viewer-port", str(v.web_port), "--server-memory-limit", v.memory_limit],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while not (_listening(v.host, v.grpc_port) and _listening(v.host, v.web_port)):
            if self._server.poll() is not None:
                err = self._server.stderr.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"the Rerun server exited with code {self._server.returncode} "
                                   f"(ports {v.grpc_port}/{v.web_port} in use?): {err}")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the Rerun server did not listen on {v.host}:{v.grpc_port} and "
                                   f":{v.web_port} within {timeout_s:g} s")
            time.sleep(0.1)
        grpc_url = f"rerun+http://{v.host}:{v.grpc_port}/proxy"
        if v.save_rrd:  # the session also goes to a file (open it later with `rerun FILE.rrd`)
            self.rec.set_sinks(self.rr.GrpcSink(grpc_url), self.rr.FileSink(v.save_rrd),
                               default_blueprint=self.blueprint())
        else:
            self.rec.connect_grpc(grpc_url, default_blueprint=self.blueprint())
        self.log_static()
        url = f"http://{v.host}:{v.web_port}/?url={urllib.parse.quote(grpc_url, safe='')}"
        if open_browser:
            webbrowser.open(url)
        return url

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is None:
            return
        try:
            self.rec.flush(timeout_sec=2.0)
            self.rec.disconnect()  # before the server goes, so the SDK does not write into a closed socket
        finally:
            self._server = None
            server.terminate()
            try:
                server.wait(timeout=10)
            except Exception:
                server.kill()
                server.wait()
            if server.stderr is not None:
                server.stderr.close()

    # -- logging ---------------------------------------------------------------------------------
    def _at(self, stamp: float) -> None:
        self.rec.set_time("ros_time", duration=float(stamp))
        self.last_stamp = max(self.last_stamp or 0.0, float(stamp))

    def log_static(self) -> None:
        rr, rec = self.rr, self.rec
        self._at(0.0)
        rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        lo, hi = np.asarray(self.cfg.controller.workspace_min), np.asarray(self.cfg.controller.workspace_max)
        rec.log("world/workspace", rr.Boxes3D(centers=[(lo + hi) / 2], half_sizes=[(hi - lo) / 2],
                                              colors=[[80, 160, 255, 120]]), static=True)
        rec.log("world/tcp", rr.TransformAxes3D(0.08), static=True)
        rec.log("world/target", rr.TransformAxes3D(0.05), static=True)
        if self.cfg.driver.adapter == "sim" and self.cfg.sim.scene == "pick_cube":
            # The stand-in's table top (sim/pick_cube.xml: its surface is z = 0).
            rec.log("world/table", rr.Boxes3D(centers=[[0.45, 0.0, -0.01]], half_sizes=[[0.45, 0.6, 0.01]],
                                              colors=[[140, 115, 89]], fill_mode="solid"), static=True)
        self._text()

    def _log_robot_shapes(self) -> None:
        """The link meshes, sent with the first joint state (before it, they would be drawn
        piled up at the base instead of where the robot is)."""
        rr, rec = self.rr, self.rec
        for name, kind, payload in self._shapes:
            if kind == "mesh":
                path, scale = payload
                rec.log(f"world/robot/{name}", rr.Asset3D(path=path, albedo_factor=[235, 235, 240, 255]),
                        static=True)
            else:
                rec.log(f"world/robot/{name}", rr.Boxes3D(half_sizes=[payload], colors=[[90, 90, 100]],
                                                          fill_mode="solid"), static=True)

    def joints(self, stamp: float, names: Sequence[str], positions: Sequence[float]) -> None:
        self._at(stamp)
        if not self.counts["joints"]:
            self._log_robot_shapes()
        for name, (translation, rotation) in self.robot.place(names, positions).items():
            self.rec.log(f"world/robot/{name}", self.rr.Transform3D(translation=translation, mat3x3=rotation,
                                                                    scale=self._mesh_scale.get(name)))
        self.counts["joints"] += 1

    def _pose(self, path: str, stamp: float, position, quat_xyzw) -> None:
        self._at(stamp)
        self.rec.log(path, self.rr.Transform3D(translation=np.asarray(position, float),
                                               quaternion=np.asarray(quat_xyzw, float)))

    def ee_pose(self, stamp: float, position, quat_xyzw) -> None:
        self._pose("world/tcp", stamp, position, quat_xyzw)
        self.counts["ee_pose"] += 1

    def ee_target(self, stamp: float, position, quat_xyzw) -> None:
        self._pose("world/target", stamp, position, quat_xyzw)
        self.rec.log("world/target/point", self.rr.Points3D([[0, 0, 0]], radii=0.012, colors=[[40, 220, 90]]))
        self.counts["ee_target"] += 1

    def object_pose(self, stamp: float, position, quat_xyzw) -> None:
        self._pose("world/cube", stamp, position, quat_xyzw)
        self.rec.log("world/cube/box", self.rr.Boxes3D(half_sizes=[[CUBE_HALF] * 3], colors=[[220, 50, 40]],
                                                       fill_mode="solid"))
        self.counts["object"] += 1

    def camera(self, stamp: float, name: str, rgb: np.ndarray) -> None:
        self._at(stamp)
        self.rec.log(f"cameras/{name}", self.rr.Image(rgb, color_model="RGB"))
        self.counts[f"camera/{name}"] += 1

    def tactile(self, stamp: float, name: str, taxels: np.ndarray) -> None:
        self._at(stamp)
        if taxels.ndim == 3:  # an optical tactile sensor already is an image
            self.rec.log(f"tactile/{name}", self.rr.Image(taxels, color_model="RGB"))
        else:
            self._tactile_scale[name] = max(self._tactile_scale.get(name, 1e-3), float(np.max(taxels)))
            self.rec.log(f"tactile/{name}", self.rr.Image(heatmap(taxels, self._tactile_scale[name]),
                                                          color_model="RGB"))
        self.counts[f"tactile/{name}"] += 1

    def intervention(self, stamp: float, active: bool) -> None:
        self._at(stamp)
        self.rec.log("intervention/active", self.rr.Scalars(float(active)))
        if active != self.state["intervention"]:
            self.state["intervention"] = bool(active)
            self._text()
        self.counts["intervention"] += 1

    def episode_event(self, stamp: float, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind not in ("success", "failure", "timeout"):
            return  # resets and their failures are not episode outcomes
        self._at(stamp)
        self._outcomes.append(kind == "success")
        rate = sum(self._outcomes) / len(self._outcomes)
        self.state.update(episodes=self.state["episodes"] + 1, success_rate=rate,
                          last_return=float(event.get("return", 0.0)))
        self.rec.log("episodes/return", self.rr.Scalars(float(event.get("return", 0.0))))
        self.rec.log("episodes/success_rate", self.rr.Scalars(rate))
        self.rec.log("episodes/intervention_rate", self.rr.Scalars(float(event.get("intervention_rate", 0.0))))
        self._text()
        self.counts["episodes"] += 1

    def controller_status(self, stamp: float, status: Mapping[str, Any]) -> None:
        self._at(stamp)
        latency = status.get("latency_ms") or {}
        for key in ("p50", "p99"):
            value = latency.get(key)
            if isinstance(value, (int, float)) and np.isfinite(value):
                self.rec.log(f"controller/latency_ms/{key}", self.rr.Scalars(float(value)))
        mode = str(status.get("mode", "-"))
        p99 = latency.get("p99")
        changed = mode != self.state["mode"]
        self.state.update(mode=mode, latency_p99_ms=p99 if isinstance(p99, (int, float)) else None)
        if changed or self.counts["controller"] % 10 == 0:
            self._text()
        self.counts["controller"] += 1

    def _text(self) -> None:
        # The text is the latest state, whatever the stamp of the message that changed it (a Joy
        # stamped a moment earlier than the last controller status): log it at the newest time
        # seen, or the viewer shows an older summary as current.
        self.rec.set_time("ros_time", duration=float(self.last_stamp or 0.0))
        s = self.state
        rate = "-" if s["success_rate"] is None else f"{100 * s['success_rate']:.0f} % (last {len(self._outcomes)})"
        ret = "-" if s["last_return"] is None else f"{s['last_return']:.2f}"
        p99 = "-" if s["latency_p99_ms"] is None or not np.isfinite(s["latency_p99_ms"]) else f"{s['latency_p99_ms']:.2f} ms"
        text = (f"**task:** {self.cfg.task.name}  \n"
                f"**intervention:** {'ON' if s['intervention'] else 'off'}  \n"
                f"**controller mode:** {s['mode']}  \n**controller p99 latency:** {p99}  \n"
                f"**episodes:** {s['episodes']}  \n**success rate:** {rate}  \n**last return:** {ret}")
        self.rec.log("status", self.rr.TextDocument(text, media_type=self.rr.MediaType.MARKDOWN))
