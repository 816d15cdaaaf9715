"""Configuration shared by the rehearsal tests over DDS."""

# The "topic" reward source (any std_msgs/Bool) needs no simulator state, so a rehearsal may use
# it without a trained classifier (the simulator-state source is refused there).
REHEARSAL = {"sim.rehearsal": True, "hil.device": "joy", "hil.reset.mode": "move_then_human",
             "hil.reward.source": "topic"}
