"""The wire codec (robot_rl.transport) is independent of the networks (issue 20)."""
from __future__ import annotations

import subprocess
import sys


def test_transport_imports_neither_the_networks_nor_torch():
    code = ("import sys, gymnasium, numpy as np\n"
            "import robot_rl.transport as t\n"
            "spec = t.obs_spec_of(gymnasium.spaces.Dict({'state': gymnasium.spaces.Box(-1, 1, (3,)),"
            " 'cam': gymnasium.spaces.Box(0, 255, (4, 4, 3), np.uint8)}))\n"
            "print(sorted(spec.items()))\n"
            "print('robot_rl.learning.networks' in sys.modules, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[-1] == "False False", out
    assert "'cam', {'shape': [4, 4, 3], 'dtype': 'uint8'}" in lines[0]
    assert "'state', {'shape': [3], 'dtype': 'float32'}" in lines[0]
