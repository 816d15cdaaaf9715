"""robot_rl: real-robot learning (SERL/HIL-SERL) and deployment on ROS 2."""
import os

# MuJoCo picks its OpenGL platform when first imported; headless EGL works on any machine with
# Mesa or an NVIDIA driver, and the user can still choose osmesa or glfw explicitly.
os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"
