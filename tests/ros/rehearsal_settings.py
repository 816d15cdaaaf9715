"""Configuration shared by the rehearsal tests over DDS."""
import typing


def reward_sources() -> tuple:
    from robot_rl.hil.config import RewardConfig
    return typing.get_args(typing.get_type_hints(RewardConfig)["source"])


# The reward sources' "topic" (any std_msgs/Bool) needs no simulator state, so a rehearsal may
# use it (the simulator-state source is refused there). Trees without the reward sources know
# no "topic" and no such refusal: their default stands.
SOURCES_MERGED = "topic" in reward_sources()
HARDWARE_LIKE_REWARD = {"hil.reward.source": "topic"} if SOURCES_MERGED else {}

REHEARSAL = {"sim.rehearsal": True, "hil.device": "joy", "hil.reset.mode": "move_then_human",
             **HARDWARE_LIKE_REWARD}
