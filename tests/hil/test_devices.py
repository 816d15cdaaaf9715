"""Devices: SpaceMouse HID reports (fake hidapi object, real byte layouts), gamepad (fake
joystick with pygame's API, real pygame with no pad), keyboard (real pygame, dummy video
driver, real key events), missing-device errors."""
import os
import time

import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.hil.devices import (DeviceError, DeviceNotFound, GamepadDevice, KeyboardDevice,
                                  SpaceMouseDevice, device_mapping, parse_spacemouse_report)
from robot_rl.hil.mapping import ActionMapper

# Reports as a SpaceNavigator (separate translation/rotation reports) sends them:
# id 1: x=+350 (5e 01), y=-175 (51 ff), z=+10 (0a 00); id 2: rx=0, ry=-1, rz=+350.
SEPARATE = [bytes([0x01, 0x5E, 0x01, 0x51, 0xFF, 0x0A, 0x00]),
            bytes([0x02, 0x00, 0x00, 0xFF, 0xFF, 0x5E, 0x01])]
# SpaceMouse Compact/Wireless: one 13-byte report with all six axes.
COMBINED = bytes([0x01, 0xA2, 0xFE, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xAF, 0x00])
LEFT, RIGHT, NONE = bytes([0x03, 0x01, 0x00]), bytes([0x03, 0x02, 0x00]), bytes([0x03, 0x00, 0x00])


def test_parse_separate_translation_and_rotation_reports():
    axes, buttons = np.zeros(6), [False, False]
    for report in SEPARATE:
        assert parse_spacemouse_report(list(report), axes, buttons)  # hidapi returns int lists
    np.testing.assert_allclose(axes, [1.0, -0.5, 10 / 350, 0.0, -1 / 350, 1.0])
    assert not parse_spacemouse_report([0x17, 0x64], axes, buttons)  # battery report ignored


def test_parse_combined_report_and_buttons():
    axes, buttons = np.zeros(6), [False, False]
    parse_spacemouse_report(COMBINED, axes, buttons)
    np.testing.assert_allclose(axes, [-1.0, 0, 0, 0, 0, 0.5])
    parse_spacemouse_report(LEFT, axes, buttons)
    assert buttons[:2] == [True, False]
    parse_spacemouse_report(RIGHT, axes, buttons)
    assert buttons[:2] == [False, True] and len(buttons) == 16
    parse_spacemouse_report(NONE, axes, buttons)
    assert not any(buttons)
    big = np.zeros(6)
    parse_spacemouse_report(bytes([0x01, 0xE8, 0x03, 0, 0, 0, 0]), big, buttons)  # 1000 counts
    assert big[0] == 1.0  # clipped


class FakeHidDevice:
    """hidapi's ``hid.device`` API: open_path, set_nonblocking, read(max_length), close."""

    def __init__(self, reports, fail_open=False):
        self.reports, self.fail_open = list(reports), fail_open
        self.opened = self.closed = False
        self.nonblocking = 0

    def open_path(self, path):
        if self.fail_open:
            raise OSError("open failed")
        self.opened = path

    def set_nonblocking(self, value):
        self.nonblocking = value
        return 0

    def read(self, max_length, timeout_ms=0):
        if not self.opened:
            raise ValueError("not open")
        if self.reports and self.reports[0] == "unplugged":
            raise OSError("read error")
        return list(self.reports.pop(0)) if self.reports else []

    def close(self):
        self.closed = True


class FakeHid:
    """The ``hid`` module: enumerate() dicts as hidapi returns them, and device()."""

    def __init__(self, reports=(), fail_open=False, devices=None):
        self.dev = FakeHidDevice(reports, fail_open)
        self.devices = devices if devices is not None else [
            {"path": b"/dev/hidraw7", "vendor_id": 0x046D, "product_id": 0xC52B,  # a receiver
             "product_string": "USB Receiver", "usage_page": 1, "usage": 6},
            {"path": b"/dev/hidraw3", "vendor_id": 0x256F, "product_id": 0xC635,
             "serial_number": "", "release_number": 0x0437, "manufacturer_string": "3Dconnexion",
             "product_string": "SpaceMouse Compact", "usage_page": 1, "usage": 8,
             "interface_number": 0}]

    def enumerate(self, vendor_id=0, product_id=0):
        return list(self.devices)

    def device(self):
        return self.dev


def test_spacemouse_device_reads_and_maps_to_the_robot_frame():
    hid = FakeHid(SEPARATE + [LEFT])
    dev = SpaceMouseDevice(hid_module=hid)
    assert hid.dev.opened == b"/dev/hidraw3" and hid.dev.nonblocking == 1
    assert "SpaceMouse Compact" in dev.product
    st = dev.read()
    assert st.buttons[0] and st.axes6[0] == 1.0
    assert dev.read().axes6[0] == 1.0  # no new report: the last state is kept
    cfg = load_config(None, {"hil.device": "spacemouse"})
    mapper = ActionMapper(device_mapping(cfg.hil), cfg.hil.deadzone)
    cmd = mapper.map(st)
    # Raw +x (right) -> robot -y; raw -y (pushed away from the user) -> robot +x; left button closes.
    assert cmd.active and cmd.action[1] == pytest.approx(-1.0) and cmd.action[0] > 0.4
    assert cmd.action[-1] == 1.0
    dev.close()
    assert hid.dev.closed


def test_spacemouse_errors_name_the_device_and_what_to_check():
    with pytest.raises(DeviceNotFound, match="udev") as exc:
        SpaceMouseDevice(hid_module=FakeHid(devices=[]))
    assert "hidraw" in str(exc.value) and "Bluetooth" in str(exc.value)
    with pytest.raises(DeviceNotFound, match="cannot be opened.*permission"):
        SpaceMouseDevice(hid_module=FakeHid(fail_open=True))
    dev = SpaceMouseDevice(hid_module=FakeHid(["unplugged"]))
    with pytest.raises(DeviceError, match="unplugged"):
        dev.read()


def test_real_hidapi_without_a_spacemouse_fails_fast_and_clearly():
    hid = pytest.importorskip("hid")
    if any(d["vendor_id"] in (0x046D, 0x256F) for d in hid.enumerate()):
        pytest.skip("a 3Dconnexion/Logitech HID device is connected")
    start = time.monotonic()
    with pytest.raises(DeviceNotFound, match="SpaceMouse.*udev"):
        SpaceMouseDevice()
    assert time.monotonic() - start < 5.0  # no wait for a device to appear


class FakeJoystick:
    """pygame.joystick.Joystick's API."""

    def __init__(self):
        self.axes = [0.0] * 6
        self.buttons = [0] * 11
        self.quit_called = False

    def get_name(self):
        return "Xbox 360 Controller"

    def get_numaxes(self):
        return len(self.axes)

    def get_axis(self, i):
        return self.axes[i]

    def get_numbuttons(self):
        return len(self.buttons)

    def get_button(self, i):
        return self.buttons[i]

    def quit(self):
        self.quit_called = True


def test_gamepad_default_mapping_xbox():
    js = FakeJoystick()
    dev = GamepadDevice(joystick=js)
    cfg = load_config(None, {"hil.device": "gamepad"})
    mapper = ActionMapper(device_mapping(cfg.hil), cfg.hil.deadzone)
    js.axes[1] = -1.0   # left stick pushed up
    js.axes[4] = 0.02   # right stick noise
    js.buttons[0] = 1   # A: close
    assert not mapper.map(dev.read()).active  # LB not held
    js.buttons[4] = 1   # LB: dead-man
    cmd = mapper.map(dev.read())
    assert cmd.active
    np.testing.assert_allclose(cmd.action, [1.0, 0.0, 0.0, 1.0])
    dev.close()
    assert js.quit_called


def test_gamepad_missing_is_a_clear_error(monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_JOYSTICK_DEVICE", "")
    start = time.monotonic()
    with pytest.raises(DeviceNotFound, match="gamepad: SDL sees 0 joystick"):
        GamepadDevice(index=0)
    assert time.monotonic() - start < 5.0


def test_keyboard_with_real_pygame_events(monkeypatch):
    pygame = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    cfg = load_config(None, {"hil.device": "keyboard"})
    kb = cfg.hil.keyboard
    dev = KeyboardDevice(kb.axis_keys, kb.button_keys, window=True)
    try:
        mapper = ActionMapper(device_mapping(cfg.hil), cfg.hil.deadzone)
        post = lambda kind, key: pygame.event.post(pygame.event.Event(kind, key=key))  # noqa: E731
        post(pygame.KEYDOWN, pygame.K_UP)
        post(pygame.KEYDOWN, pygame.K_PAGEUP)
        cmd = mapper.map(dev.read())
        assert not cmd.active and cmd.action[0] == 1.0  # moving keys alone: no dead-man
        post(pygame.KEYDOWN, pygame.K_SPACE)
        post(pygame.KEYDOWN, pygame.K_c)
        cmd = mapper.map(dev.read())
        assert cmd.active
        np.testing.assert_allclose(cmd.action, [1.0, 0.0, 1.0, 1.0])
        post(pygame.KEYUP, pygame.K_c)
        post(pygame.KEYUP, pygame.K_UP)
        post(pygame.KEYDOWN, pygame.K_LEFT)
        np.testing.assert_allclose(mapper.map(dev.read()).action, [0.0, 1.0, 1.0, 0.0])
        post(pygame.KEYUP, pygame.K_SPACE)
        assert not mapper.map(dev.read()).active
        post(pygame.KEYDOWN, pygame.K_SPACE)
        pygame.event.post(pygame.event.Event(pygame.WINDOWFOCUSLOST))
        assert not mapper.map(dev.read()).active  # focus lost releases every key
    finally:
        dev.close()
    with pytest.raises(ValueError, match="unknown key name 'hyperspace'"):
        KeyboardDevice(["hyperspace"] + [""] * 11, ["space"])


def test_joy_topic_age_counts_from_dds_reception_not_from_the_callback():
    import rclpy
    from sensor_msgs.msg import Joy

    from robot_rl.hil.devices import JoyTopicDevice

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("joy_device_test", context=context)
    try:
        dev = JoyTopicDevice(node, "/joy_device_test", timeout=0.5)
        msg = Joy(axes=[0.5, -0.25], buttons=[1])
        # Received by DDS 2 s ago, handled only now (a stall of the node's process).
        dev._on_joy(msg, {"received_timestamp": time.time_ns() - 2_000_000_000})
        with pytest.raises(DeviceError, match="no message for 2.0 s"):
            dev.read()
        dev._on_joy(msg, {"received_timestamp": time.time_ns()})
        state = dev.read()
        np.testing.assert_allclose(state.axes6, [0.5, -0.25, 0, 0, 0, 0])
        assert state.buttons == [True]
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
