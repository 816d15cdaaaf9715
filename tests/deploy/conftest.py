"""Shared fixtures for the deployment-core tests.

The repository is not pip-installed in every environment: make sure the repo root
(``robot_rl``, ``tests.deploy._policies``) is importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for p in (_HERE.parents[1],):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import pytest  # noqa: E402

from tests.deploy._policies import make_metadata, make_policy  # noqa: E402


@pytest.fixture(scope="session")
def torch_policy():
    return make_policy(seed=0)


@pytest.fixture(scope="session")
def metadata():
    return make_metadata()


@pytest.fixture(scope="session")
def exported(tmp_path_factory, torch_policy, metadata):
    """One exported model shared by the runtime tests (export takes ~0.3 s per model)."""
    from tests.deploy._policies import example_obs
    from robot_rl.deploy.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("exported") / "policy.onnx"
    return export_onnx(torch_policy, example_obs(), metadata, path, exporter="torchscript")
