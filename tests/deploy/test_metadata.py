from __future__ import annotations

import json

import pytest

from tests.deploy._policies import ACTION_NAMES, IMAGE_SHAPE, JOINTS, STATE_DIM, make_metadata
from robot_rl.deploy.errors import MetadataError, MetadataNotFoundError, ModelMismatchError
from robot_rl.deploy.metadata import (
    FORMAT_VERSION,
    ActionSpec,
    ObservationTerm,
    PolicyMetadata,
    RobotSpec,
    metadata_path_for,
)


def matching_robot(**overrides) -> RobotSpec:
    fields = dict(
        joint_names=list(JOINTS),
        observation_shapes={"state": (STATE_DIM,), "wrist_rgb": IMAGE_SHAPE, "extra_cam": (64, 64, 3)},
        control_rate_hz=20.0,
        robot_description_id="test_arm_v1",
    )
    fields.update(overrides)
    return RobotSpec(**fields)


def test_round_trip(tmp_path, metadata):
    path = metadata.save(tmp_path / "p.json")
    loaded = PolicyMetadata.load(path)
    assert loaded == metadata
    assert json.loads(path.read_text())["format_version"] == FORMAT_VERSION
    # Loading via the .onnx path finds the JSON beside it.
    assert metadata_path_for(tmp_path / "p.onnx") == path
    assert PolicyMetadata.load(tmp_path / "p.onnx") == metadata


def test_matching_robot_accepted(metadata):
    metadata.check_against(matching_robot())  # extra robot sensors are fine
    # duck-typed mapping with the alias "control_rate" also works
    metadata.check_against(
        {"joint_names": JOINTS, "observation_shapes": {"state": [STATE_DIM], "wrist_rgb": list(IMAGE_SHAPE)},
         "control_rate": 20}
    )


def test_every_mismatch_is_named(metadata):
    robot = matching_robot(
        joint_names=[*JOINTS[:-1], "wrist_roll_extra"],  # joint_5 missing, one unexpected
        observation_shapes={"state": (STATE_DIM + 1,)},  # wrong shape, wrist_rgb missing
        control_rate_hz=50.0,
        robot_description_id="other_arm",
    )
    with pytest.raises(ModelMismatchError) as ei:
        metadata.check_against(robot)
    msg = str(ei.value)
    fields = {m.field for m in ei.value.mismatches}
    assert fields == {
        "robot_description_id",
        "joint 'joint_5'",
        "joint 'wrist_roll_extra'",
        "observation 'state' shape",
        "observation 'wrist_rgb'",
        "control_rate_hz",
    }
    # expected vs found both appear
    assert "control_rate_hz: expected 20.0, found 50.0" in msg
    assert f"expected [{STATE_DIM}], found [{STATE_DIM + 1}]" in msg
    assert "'test_arm_v1', found 'other_arm'" in msg
    assert "missing on robot" in msg


def test_joint_order_and_dtype_mismatch(metadata):
    robot = matching_robot(joint_names=list(reversed(JOINTS)), observation_dtypes={"wrist_rgb": "float32"})
    with pytest.raises(ModelMismatchError) as ei:
        metadata.check_against(robot)
    fields = [m.field for m in ei.value.mismatches]
    assert fields == ["joint_names (order)", "observation 'wrist_rgb' dtype"]
    assert "expected 'uint8', found 'float32'" in str(ei.value)


def test_robot_spec_missing_attribute_is_clear(metadata):
    with pytest.raises(TypeError, match="no 'observation_shapes'"):
        metadata.check_against({"joint_names": JOINTS, "control_rate_hz": 20})


def test_missing_file(tmp_path):
    with pytest.raises(MetadataNotFoundError, match="not found") as ei:
        PolicyMetadata.load(tmp_path / "nope.onnx")
    assert isinstance(ei.value, FileNotFoundError)
    assert "nope.json" in str(ei.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "empty"),
        ("{not json", "not valid JSON (line 1"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_corrupt_file(tmp_path, text, expected):
    p = tmp_path / "p.json"
    p.write_text(text)
    with pytest.raises(MetadataError, match=expected.replace("(", r"\(")):
        PolicyMetadata.load(p)


def _dump(tmp_path, data):
    p = tmp_path / "p.json"
    p.write_text(json.dumps(data))
    return p


def test_missing_and_wrong_fields(tmp_path, metadata):
    base = metadata.to_dict()
    d = dict(base)
    del d["control_rate_hz"]
    with pytest.raises(MetadataError, match="missing required field 'control_rate_hz'"):
        PolicyMetadata.load(_dump(tmp_path, d))
    d = json.loads(json.dumps(base))
    d["robot"]["joint_names"] = "joint_0"
    with pytest.raises(MetadataError, match="robot: field 'joint_names' must be a list"):
        PolicyMetadata.load(_dump(tmp_path, d))
    d = json.loads(json.dumps(base))
    d["observations"][1]["dtype"] = "float64"
    with pytest.raises(MetadataError, match="observation 'wrist_rgb': dtype must be one of"):
        PolicyMetadata.load(_dump(tmp_path, d))
    d = json.loads(json.dumps(base))
    d["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(MetadataError, match="newer than this runtime supports"):
        PolicyMetadata.load(_dump(tmp_path, d))
    d = json.loads(json.dumps(base))
    d["control_rate_hz"] = True
    with pytest.raises(MetadataError, match="'control_rate_hz' must be"):
        PolicyMetadata.load(_dump(tmp_path, d))


def test_construction_validation():
    with pytest.raises(MetadataError, match="duplicated"):
        make_metadata(observations=(ObservationTerm("a", (3,)), ObservationTerm("a", (3,))))
    with pytest.raises(MetadataError, match="reserved"):
        make_metadata(observations=(ObservationTerm("action", (3,)),))
    with pytest.raises(MetadataError, match="per-element scale has 2 entries, expected 3"):
        ObservationTerm("s", (3,), scale=(1.0, 2.0))
    with pytest.raises(MetadataError, match="action scale has 1 entries, expected 2"):
        ActionSpec(names=("a", "b"), scale=(1.0,))
    with pytest.raises(MetadataError, match="control_rate_hz"):
        make_metadata(control_rate_hz=0)


def test_normalize_action(metadata):
    import numpy as np

    a = np.asarray(metadata.action.offset) + np.asarray(metadata.action.scale) * 0.5
    np.testing.assert_allclose(metadata.normalize_action(a), np.full(len(ACTION_NAMES), 0.5))
