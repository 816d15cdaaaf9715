"""Configuration of the deployment controller node (``robot_rl.ros.controller_node``).

The safety limits themselves live in ``Config.safety`` (:class:`SafetyConfig`); this section
says which model runs and how the node watches its inputs; it runs at ``Config.control_rate_hz``,
the rate the model was trained and exported at.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robot_rl.paths import find_user_file
from robot_rl.schema import check


@dataclass
class DeployConfig:
    # Exported policy; its metadata JSON sits beside it. Relative: the working directory, then
    # the installed share folder (model_file(); see models/README.md).
    model: str = "models/policy.onnx"
    providers: str = "auto"            # auto | cpu | cuda | tensorrt
    intra_op_threads: int = 1          # onnxruntime CPU threads (1: least jitter, see docs)
    # Watchdog: max age (s) of each input the controller reads, for the sensors without an
    # entry in safety.sensor_max_age_s (names: joint_states, ee_pose, ee_twist,
    # tactile_<name>, image_<name>, object). Age = time since DDS received a message with a NEW
    # stamp, on the controller's monotonic clock, so a stream that stops or repeats its
    # stamp ages out.
    default_sensor_max_age_s: float = 0.25
    status_rate_hz: float = 10.0       # /controller/status rate (published by the control thread after a tick)
    stats_log_period_s: float = 10.0   # loop period / jitter / latency log period
    spin_s: float = 0.0002             # RateLoop: spin (instead of sleeping) this long before a deadline
    # A rehearsal of the whole tick (inputs, observation, policy, command, safety filter, message
    # serialisation, on a twin core that publishes nothing) this long before each deadline, so
    # the real tick finds its code and data in cache (after 10 ms idle the core step ran 4x
    # slower); 0 = off. Skipped when less time than this is left before the deadline (so at
    # 500 Hz it does not run).
    warm_s: float = 0.003
    # Phase lock: shift the tick grid so each tick comes sync_age_s after a sample of this
    # input arrived, so the policy acts on a fresh sample without waiting for one. Only while
    # that stream is faster than the loop (a robot driver's state usually is; the sim's is
    # not), or with sync_equal_rate also at the loop's rate (a stream published once per
    # control period; sync_age_s must then cover its arrival jitter); otherwise, and with '',
    # the grid free-runs (control_loop.PhaseLock).
    sync_input: str = "ee_pose"
    sync_age_s: float = 0.0003
    sync_equal_rate: bool = False
    # SCHED_FIFO priority of the control-loop thread (1-99; needs CAP_SYS_NICE / rtprio
    # limits); 0 = normal scheduling. A failure to set it is logged, not fatal.
    rt_priority: int = 0

    def validate(self) -> None:
        check(self.providers in ("auto", "cpu", "cuda", "tensorrt"),
              f"providers must be one of auto, cpu, cuda, tensorrt; got {self.providers!r}")
        check(self.intra_op_threads >= 1, "intra_op_threads must be >= 1")
        check(self.default_sensor_max_age_s > 0, "default_sensor_max_age_s must be > 0")
        check(self.status_rate_hz > 0, "status_rate_hz must be > 0")
        check(self.stats_log_period_s > 0, "stats_log_period_s must be > 0")
        check(0 <= self.spin_s < 0.01, "spin_s must be in [0, 0.01)")
        check(0 <= self.warm_s < 0.01, "warm_s must be in [0, 0.01)")
        check(0 <= self.sync_age_s < 0.05, "sync_age_s must be in [0, 0.05)")
        check(0 <= self.rt_priority <= 99, "rt_priority must be in [0, 99] (0 = normal scheduling)")

    def model_file(self) -> Path:
        """The policy file ``model`` names (robot_rl.paths.find_user_file); FileNotFoundError
        lists where it looked."""
        return find_user_file(self.model, "deploy.model (exported policy)")
