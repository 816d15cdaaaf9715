"""Teleoperation input devices behind one small interface: ``read() -> DeviceState``.

* ``SpaceMouseDevice``: 3Dconnexion SpaceMouse through hidapi (the ``hid`` module of the
  ``hidapi`` package), parsing the raw HID reports (format in ``parse_spacemouse_report``).
* ``GamepadDevice``: any SDL game pad through pygame's joystick API.
* ``JoyTopicDevice``: the standard ``sensor_msgs/Joy`` topic (the ROS ``joy`` node).
* ``KeyboardDevice``: pygame key events (a small window that must have keyboard focus).

``read()`` never blocks for long: it drains what the device has delivered and returns the
current state. A device that is missing or stops answering raises ``DeviceError`` (or its
subclass ``DeviceNotFound``) with what to check.
"""
from __future__ import annotations

import os
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from robot_rl.topics import JOY


class DeviceError(RuntimeError):
    """The device failed or stopped answering; the message says what to check."""


class DeviceNotFound(DeviceError):
    """No such device is connected or accessible."""


@dataclass
class DeviceState:
    axes6: np.ndarray                 # (6,) in [-1, 1]: device x, y, z, rx, ry, rz (or stick axes)
    buttons: list[bool] = field(default_factory=list)
    stamp: float = 0.0                # time.monotonic() of the reading


class Device:
    name = "device"

    def read(self) -> DeviceState:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- 3Dconnexion SpaceMouse (hidapi) ----------------------------------------------------------
VENDOR_3DCONNEXION = (0x046D, 0x256F)  # old devices enumerate with Logitech's vendor id
SPACEMOUSE_PRODUCTS = {
    0xC603: "SpaceMouse Plus XT", 0xC605: "CADMan", 0xC606: "SpaceMouse Classic",
    0xC621: "SpaceBall 5000", 0xC623: "SpaceTraveler", 0xC625: "SpacePilot",
    0xC626: "SpaceNavigator", 0xC627: "SpaceExplorer", 0xC628: "SpaceNavigator for Notebooks",
    0xC629: "SpacePilot Pro", 0xC62B: "SpaceMouse Pro", 0xC62E: "SpaceMouse Wireless (cable)",
    0xC62F: "SpaceMouse Wireless (receiver)", 0xC631: "SpaceMouse Pro Wireless (cable)",
    0xC632: "SpaceMouse Pro Wireless (receiver)", 0xC633: "SpaceMouse Enterprise",
    0xC635: "SpaceMouse Compact", 0xC636: "SpaceMouse Module", 0xC652: "Universal Receiver",
}
_SPACEMOUSE_HINT = (
    "check: (1) it is plugged in by USB or its USB receiver is (over Bluetooth it appears as a "
    "different hidraw device: pass its path as hil.spacemouse.path, see `python -c \"import hid; "
    "print(hid.enumerate())\"`); (2) your user may open /dev/hidraw*: add a udev rule such as "
    "/etc/udev/rules.d/99-spacemouse.rules with  KERNEL==\"hidraw*\", ATTRS{idVendor}==\"256f\", "
    "MODE=\"0666\"  (and idVendor 046d for older models), then `sudo udevadm control --reload "
    "&& sudo udevadm trigger` and replug; (3) no other program (spacenavd, 3DxWare) holds it")


def parse_spacemouse_report(data, state: np.ndarray, buttons: list[bool],
                            full_scale: float = 350.0) -> bool:
    """Update ``state`` (6 raw-normalised axes) and ``buttons`` in place from one HID report.

    3Dconnexion report format (report id in byte 0, little-endian int16 values):

    * id 1, 7 bytes: translation x, y, z (bytes 1-2, 3-4, 5-6). Devices with a combined report
      (SpaceMouse Wireless/Compact/Pro Wireless, universal receiver) send 13 bytes: x, y, z,
      rx, ry, rz.
    * id 2, 7 bytes: rotation rx, ry, rz (older devices send translation and rotation apart).
    * id 3: buttons as a bitmask, bit i of byte 1 + i // 8 = button i (1 = pressed).
    * other ids (battery 0x17, LEDs...) are ignored.

    Raw axes: +x right, +y toward the user, +z down; rotations right-handed about them; about
    ±350 counts at full deflection (``full_scale``). Returns whether the report was used.
    """
    data = bytes(bytearray(int(b) & 0xFF for b in data))
    if not data:
        return False
    rid = data[0]
    if rid == 1 and len(data) >= 7:
        n = 6 if len(data) >= 13 else 3
        values = struct.unpack_from(f"<{n}h", data, 1)
        state[:n] = np.clip(np.array(values, float) / full_scale, -1.0, 1.0)
        return True
    if rid == 2 and len(data) >= 7:
        state[3:6] = np.clip(np.array(struct.unpack_from("<3h", data, 1), float) / full_scale,
                             -1.0, 1.0)
        return True
    if rid == 3 and len(data) >= 2:
        buttons[:] = [bool(byte >> i & 1) for byte in data[1:] for i in range(8)]
        return True
    return False


class SpaceMouseDevice(Device):
    """A SpaceMouse through hidapi. ``hid_module`` defaults to the real ``hid`` module (package
    ``hidapi``); tests pass an object with the same ``enumerate``/``device`` API."""
    name = "SpaceMouse"

    def __init__(self, path: str = "", vendor_id: int = 0, product_id: int = 0,
                 full_scale: float = 350.0, hid_module=None):
        if hid_module is None:
            try:
                import hid as hid_module
            except ImportError as exc:
                raise DeviceNotFound(
                    f"SpaceMouse: the hidapi Python package is not installed ({exc}); "
                    f"`pip install hidapi` (it ships libhidapi)") from None
        self.hid = hid_module
        self.full_scale = full_scale
        self.state = np.zeros(6)
        self.buttons: list[bool] = [False, False]
        self.product = ""
        infos = self._find(path, vendor_id, product_id)
        info = infos[0]
        self.dev = hid_module.device()
        try:
            self.dev.open_path(info["path"])
        except (OSError, IOError) as exc:
            raw = info["path"].decode() if isinstance(info["path"], bytes) else info["path"]
            raise DeviceNotFound(
                f"SpaceMouse {self._describe(info)} found at {raw} but it cannot be opened "
                f"({exc}): usually a permission problem; {_SPACEMOUSE_HINT}") from None
        self.dev.set_nonblocking(1)
        self.product = self._describe(info)

    def _describe(self, info) -> str:
        name = info.get("product_string") or SPACEMOUSE_PRODUCTS.get(info.get("product_id"), "")
        return f"'{name}' ({info.get('vendor_id', 0):04x}:{info.get('product_id', 0):04x})"

    def _find(self, path: str, vendor_id: int, product_id: int) -> list[dict]:
        found = []
        for info in self.hid.enumerate():
            p = info.get("path", b"")
            p = p.decode() if isinstance(p, bytes) else str(p)
            if path:
                if p == path:
                    found.append(info)
                continue
            vid, pid = info.get("vendor_id"), info.get("product_id")
            if vendor_id and vid != vendor_id or product_id and pid != product_id:
                continue
            if not vendor_id and vid not in VENDOR_3DCONNEXION:
                continue
            if not product_id and pid not in SPACEMOUSE_PRODUCTS:
                continue
            found.append(info)
        if not found:
            wanted = (f"path {path}" if path else
                      f"vendor {vendor_id:04x}" if vendor_id else "a 3Dconnexion vendor id "
                      "(046d/256f)")
            raise DeviceNotFound(f"SpaceMouse: no HID device with {wanted} found by hidapi; "
                                 f"{_SPACEMOUSE_HINT}")
        # The 6-DoF reports come on the multi-axis controller collection (usage page 1, usage 8).
        found.sort(key=lambda i: not (i.get("usage_page") == 1 and i.get("usage") == 8))
        return found

    def read(self) -> DeviceState:
        try:
            for _ in range(64):  # drain what arrived since the last read; never block
                data = self.dev.read(64)
                if not data:
                    break
                parse_spacemouse_report(data, self.state, self.buttons, self.full_scale)
        except (OSError, IOError, ValueError) as exc:
            raise DeviceError(f"SpaceMouse {self.product}: read failed ({exc}); was it "
                              f"unplugged or did the receiver lose the device?") from None
        return DeviceState(self.state.copy(), list(self.buttons), time.monotonic())

    def close(self) -> None:
        dev, self.dev = getattr(self, "dev", None), None
        if dev is not None:
            dev.close()


# -- pygame (SDL): gamepad and keyboard --------------------------------------------------------
def _pygame():
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as exc:
        raise DeviceNotFound(f"pygame is not installed ({exc}); `pip install pygame` for the "
                             f"gamepad and keyboard devices") from None
    return pygame


class GamepadDevice(Device):
    """SDL joystick through pygame. ``joystick`` (tests) is an object with pygame's Joystick API
    (get_numaxes/get_axis/get_numbuttons/get_button/get_name/quit)."""
    name = "gamepad"

    def __init__(self, index: int = 0, joystick=None):
        self.pg = None
        if joystick is None:
            pg = self.pg = _pygame()
            pg.joystick.init()
            count = pg.joystick.get_count()
            if index >= count:
                pg.joystick.quit()
                raise DeviceNotFound(
                    f"gamepad: SDL sees {count} joystick(s), index {index} requested; check: it "
                    f"is connected (USB cable, or paired and connected over Bluetooth: "
                    f"`bluetoothctl info`), it shows up as /dev/input/js* or /dev/input/event* "
                    f"and your user may read it (group 'input'), and no SDL_JOYSTICK_* "
                    f"environment variable hides it (SDL_JOYSTICK_DEVICE={os.environ.get('SDL_JOYSTICK_DEVICE', '')!r})")
            joystick = pg.joystick.Joystick(index)
            joystick.init()
        self.js = joystick
        self.product = joystick.get_name()

    def read(self) -> DeviceState:
        try:
            if self.pg is not None:
                for event in self.pg.event.get((self.pg.JOYDEVICEREMOVED,)):
                    raise DeviceError(f"gamepad '{self.product}' was disconnected")
                self.pg.event.pump()
            n_axes = self.js.get_numaxes()
            axes = np.zeros(6)
            for i in range(min(6, n_axes)):
                axes[i] = self.js.get_axis(i)
            buttons = [bool(self.js.get_button(i)) for i in range(self.js.get_numbuttons())]
        except DeviceError:
            raise
        except Exception as exc:  # pygame.error
            raise DeviceError(f"gamepad '{self.product}': read failed ({exc})") from None
        return DeviceState(np.clip(axes, -1, 1), buttons, time.monotonic())

    def close(self) -> None:
        if self.js is not None:
            try:
                self.js.quit()
            except Exception:
                pass
        self.js = None


class KeyboardDevice(Device):
    """Keys held down, from pygame KEYDOWN/KEYUP events (so a key counts as held exactly while
    it is down, which a terminal cannot tell: it only sees repeats). Needs a pygame window with
    keyboard focus; with ``SDL_VIDEODRIVER=dummy`` it runs headless (events posted in-process)."""
    name = "keyboard"

    def __init__(self, axis_keys: list[str], button_keys: list[str], window: bool = True):
        pg = self.pg = _pygame()
        pg.display.init()
        try:
            self.axis_codes = [self._code(k) for k in axis_keys]
            self.button_codes = [self._code(k) for k in button_keys]
        except ValueError:
            pg.display.quit()
            raise
        try:
            if window or os.environ.get("SDL_VIDEODRIVER") == "dummy":
                self.screen = pg.display.set_mode((360, 90))
                pg.display.set_caption("robot_rl teleop: keep this window focused")
        except pg.error as exc:
            raise DeviceNotFound(
                f"keyboard: cannot open a pygame window ({exc}); check DISPLAY/WAYLAND_DISPLAY "
                f"(a desktop session or `ssh -X`), or use a gamepad/SpaceMouse") from None
        self.held: set[int] = set()

    def _code(self, name: str) -> int | None:
        if not name:
            return None
        try:
            return self.pg.key.key_code(name)
        except ValueError:
            raise ValueError(f"keyboard: unknown key name {name!r} (pygame key names, e.g. "
                             f"'space', 'up', 'page up', 'a')") from None

    def read(self) -> DeviceState:
        pg = self.pg
        for event in pg.event.get((pg.KEYDOWN, pg.KEYUP, pg.WINDOWFOCUSLOST, pg.QUIT)):
            if event.type == pg.KEYDOWN:
                self.held.add(event.key)
            elif event.type == pg.KEYUP:
                self.held.discard(event.key)
            else:  # focus lost: KEYUP events would go elsewhere; release everything (dead-man)
                self.held.clear()
        axes = np.zeros(6)
        for axis in range(6):
            neg, pos = self.axis_codes[2 * axis], self.axis_codes[2 * axis + 1]
            axes[axis] = float(pos in self.held) - float(neg in self.held)
        buttons = [code in self.held for code in self.button_codes]
        return DeviceState(axes, buttons, time.monotonic())

    def close(self) -> None:
        try:
            self.pg.display.quit()
        except Exception:
            pass


# -- sensor_msgs/Joy topic ---------------------------------------------------------------------
class JoyTopicDevice(Device):
    """Latest ``sensor_msgs/Joy`` on ``topic`` (the ROS ``joy`` node's /joy), received by
    ``node``'s executor. Stale for longer than ``timeout`` -> DeviceError. A message's age counts
    from when DDS received it: one that waited out a stall of this process is already old."""
    name = "Joy topic"

    def __init__(self, node, topic: str = JOY, timeout: float = 0.5):
        from sensor_msgs.msg import Joy
        self.topic, self.timeout = topic, timeout
        self._lock = threading.Lock()
        self._latest: tuple[float, object] | None = None
        self._started = time.monotonic()
        self._sub = node.create_subscription(Joy, topic, self._on_joy, 10)
        self._node = node
        self.on_message = None  # called (no arguments) after each message is stored

    def _on_joy(self, msg, info: dict) -> None:
        now = time.monotonic()
        received_ns = info.get("received_timestamp")
        # DDS stamps receptions on the system clock; ages here are on the monotonic one.
        received = now - (time.time_ns() - received_ns) / 1e9 if received_ns else now
        with self._lock:
            self._latest = (received, msg)
        if self.on_message is not None:
            self.on_message()

    def read(self) -> DeviceState:
        with self._lock:
            latest = self._latest
        now = time.monotonic()
        if latest is None or now - latest[0] > self.timeout:
            since = "ever" if latest is None else f"{now - latest[0]:.1f} s"
            raise DeviceError(
                f"Joy topic {self.topic}: no message for {since}; check that the joy node runs "
                f"on this ROS_DOMAIN_ID ({os.environ.get('ROS_DOMAIN_ID', '0')}) "
                f"(`ros2 run joy joy_node`, with autorepeat_rate > 0 so it publishes while "
                f"idle), and that it sees the pad (`ros2 run joy joy_enumerate_devices`)")
        msg = latest[1]
        axes = np.zeros(6)
        n = min(6, len(msg.axes))
        axes[:n] = msg.axes[:n]
        return DeviceState(np.clip(axes, -1, 1), [bool(b) for b in msg.buttons], latest[0])

    def close(self) -> None:
        try:
            self._node.destroy_subscription(self._sub)
        except Exception:
            pass


def open_device(hil, node=None) -> Device:
    """The device named by ``hil.device`` (HILConfig), with its settings."""
    kind = hil.device
    if kind == "spacemouse":
        c = hil.spacemouse
        return SpaceMouseDevice(c.path, c.vendor_id, c.product_id, c.full_scale)
    if kind == "gamepad":
        return GamepadDevice(hil.gamepad.index)
    if kind == "keyboard":
        c = hil.keyboard
        return KeyboardDevice(c.axis_keys, c.button_keys, c.window)
    if kind == "joy":
        if node is None:
            raise ValueError("the Joy topic device needs a ROS node to subscribe with")
        return JoyTopicDevice(node, hil.joy.topic, hil.joy.timeout)
    raise ValueError(f"hil.device {kind!r} is not a physical device; expected one of "
                     f"spacemouse, gamepad, keyboard, joy")


def device_mapping(hil):
    """The MappingConfig of the configured device."""
    return getattr(hil, hil.device).mapping
