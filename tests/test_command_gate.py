"""Operator command tokens (security.restrict_commands), ROS-free: who may move the robot."""
import json

import pytest

from robot_rl import security as S
from robot_rl.config import load_config
from robot_rl.schema import ConfigError


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("cmd") / "keys"
    S.init_keystore(path, actors=1)
    return path


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def test_signed_token_allows_exactly_one_call(keys):
    clock = Clock()
    gate = S.CommandGate(S.Keyring.load(keys), max_age_s=5.0, clock=clock)
    operator = S.Signer.load(keys, "operator")
    assert gate.authorize("/scene/reset")[0] is False
    token = S.command_token(operator, "/scene/reset", now=clock.now)
    assert gate.offer(token) is None
    assert gate.authorize("/controller/engage")[0] is False  # a token names one service
    assert gate.authorize("/scene/reset") == (True, "")
    ok, why = gate.authorize("/scene/reset")  # used up
    assert not ok and "robot-rl call /scene/reset" in why
    assert gate.offer(token) == "replayed"  # the same token again
    clock.now += 6.0
    assert gate.offer(S.command_token(operator, "/scene/reset", now=clock.now - 6.0)) == "expired"
    fresh = S.command_token(operator, "/scene/reset", now=clock.now)
    assert gate.offer(fresh) is None
    clock.now += 5.5  # granted, but not used in time
    assert gate.authorize("/scene/reset")[0] is False


def test_forged_tokens_are_refused_by_reason(keys, tmp_path):
    clock = Clock()
    gate = S.CommandGate(S.Keyring.load(keys), clock=clock)
    good = json.loads(S.command_token(S.Signer.load(keys, "operator"), "/scene/reset",
                                      now=clock.now))
    retarget = dict(good, service="/controller/engage")  # signature over another service
    cases = {
        "unknown_key": S.command_token(S.Signer.generate(), "/scene/reset", now=clock.now),
        "wrong_role": S.command_token(S.Signer.load(keys, "actor_0"), "/scene/reset",
                                      now=clock.now),
        "bad_signature": json.dumps(retarget),
        "malformed": "[]",
        "malformed ": json.dumps(dict(good, sig="!!")),
        "malformed  ": "x" * 10_000,
    }
    for reason, text in cases.items():
        assert gate.offer(text) == reason.strip()
    assert not gate.authorize("/controller/engage")[0]
    assert gate.refused["malformed"] == 3


def test_restrict_commands_config():
    with pytest.raises(ConfigError, match="security.restrict_commands"):
        load_config(None, {"security.restrict_commands": True, "security.auto": False})
    with pytest.raises(ConfigError, match="security.command_max_age_s"):
        load_config(None, {"security.command_max_age_s": 0})
