#!/usr/bin/env bash
# Sets up ./.venv with everything robot_rl needs, on a machine without ROS 2 from apt:
# system libraries (EGL for headless MuJoCo, libusb for pyrealsense2, g++ for agent.compile), a CPU torch, a real rclpy
# on Fast DDS from the ROS 2 Jazzy wheels, and the package itself (editable).
# Idempotent: a second run only checks. Machines with ROS 2 from apt: see ros2_ws/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 libglib2.0-0 libusb-1.0-0 g++ openssl chromium"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "[install] apt packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/pip --disable-pip-version-check -q"
# torch first and pinned, so no later requirement can pull a CUDA build onto a CPU machine.
# Elsewhere, on a CPU-only machine, set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  $PIP install torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
$PIP install -e '.[ros,test,hardware]'
# LeRobot's own dataset loader, for the tests that read our LeRobot exports with it. Without its
# dependencies: they pin opencv<4.13 (which would downgrade opencv and numpy); the ones it
# imports are in the test extra. Its torchvision import is handled in tests/data/test_lerobot.py.
$PIP install --no-deps lerobot-dataset==0.4.4
.venv/bin/python - <<'PY'
import torch, rclpy, mujoco, pinocchio, onnxruntime
cuda = [d for d in __import__("importlib.metadata").metadata.distributions()
        if d.metadata["Name"].startswith("nvidia-")]
print(f"[install] ok: torch {torch.__version__}, mujoco {mujoco.__version__}, "
      f"pinocchio {pinocchio.__version__}, onnxruntime {onnxruntime.__version__}, "
      f"CUDA packages: {len(cuda)}")
PY
