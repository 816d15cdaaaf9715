"""Learning hyperparameters, torch-free so the central configuration can load them anywhere."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Tuple

from robot_rl.schema import ConfigError, FieldError, from_dict, require, require_positive

# The smallest message limit that is not a mistake: a one-step state transition batch or the
# smallest actor's weights take a few KiB; a limit below this would refuse every message.
MIN_MESSAGE_BYTES = 65536


@dataclass
class EncoderConfig:
    """Observation encoder hyperparameters."""

    image_encoder: str = "small_cnn"  # "small_cnn" | "resnet10"
    pretrained_weights: Optional[str] = None  # local safetensors for resnet10 (never downloaded)
    freeze_image_encoder: bool = False  # freeze the conv trunk (SERL freezes the pretrained ResNet)
    # With a frozen trunk and no augmentation the trunk's features of a frame never change:
    # compute them once per distinct frame (found by content) and keep them, at most
    # feature_cache_frames per camera (least recently used dropped first). Learner updates then
    # cost what the heads and MLPs cost (docs/benchmarks.md, "Issue 17 — rehearsal").
    cache_image_features: bool = False
    # Before RL, fit the frozen trunk (with the heads and the actor) by behaviour cloning on the
    # demonstrations' frames for this many steps, then freeze it again (RLPDAgent.
    # pretrain_image_trunk): a randomly initialised frozen trunk need not show where the object
    # is, and a pretrained one cannot be downloaded on every robot's machine. 0: keep the init.
    pretrain_steps: int = 0
    pretrain_batch: int = 64
    feature_cache_frames: int = 20_000  # per camera; 64x64 small CNN: 8 KiB per frame (fp32)
    cnn_channels: int = 32
    num_spatial_kernels: int = 8
    image_feature_dim: int = 256
    state_feature_dim: int = 64
    tactile_feature_dim: int = 64
    tactile_mode: str = "mlp"
    augment: bool = True  # DrQ random shift during updates (never in act/export)
    augment_pad: int = 4
    # For state-only observations SB3/RLPD feed the raw vector to the MLPs; an
    # extra Linear+LN+tanh layer only costs speed there, so it is optional.
    encode_state_only: bool = False
    # Normalise state/tactile inputs with statistics of the demonstrations (fixed after the fit,
    # exported with the policy). input_norm_min_std floors the scale of near-constant inputs.
    normalize_inputs: bool = True
    input_norm_min_std: float = 0.01

    def validate(self) -> None:
        require_positive(self, "cnn_channels", "num_spatial_kernels", "image_feature_dim",
                         "state_feature_dim", "tactile_feature_dim", "input_norm_min_std",
                         "feature_cache_frames")
        require(self, 0, "augment_pad", "pretrain_steps")
        require_positive(self, "pretrain_batch")
        if self.pretrain_steps and not self.freeze_image_encoder:
            raise FieldError("pretrain_steps", "needs freeze_image_encoder: true (a trainable "
                                               "trunk learns during RL anyway)")
        if self.cache_image_features and not self.freeze_image_encoder:
            raise FieldError("cache_image_features", "needs freeze_image_encoder: true (a "
                                                     "trainable trunk's features change at every update)")
        if self.cache_image_features and self.augment:
            raise FieldError("cache_image_features", "needs augment: false (DrQ shifts give a "
                                                     "new image, and new features, at every update)")


# The hyperparameters that depend on whether a run learns from demonstrations, by preset.
# "rlpd": RLPD's own, for dense rewards or no demonstrations. "demos": the recipe measured on
# pick, the tactile insertion and FetchPickAndPlace with a sparse success reward (plain RLPD
# stays at 0 % on pick; docs/learning.md, "Which to use").
PRESETS: Mapping[str, Mapping[str, Any]] = {
    "rlpd": {"num_critics": 10, "utd_ratio": 8, "bc_weight": 0.0},
    "demos": {"num_critics": 2, "utd_ratio": 4, "bc_weight": 2.0},
}


@dataclass
class RLPDConfig:
    """All RLPD/SAC hyperparameters (defaults follow RLPD/SERL)."""

    hidden_dims: Tuple[int, ...] = (256, 256)
    # Where num_critics, utd_ratio and bc_weight come from when they are null: "auto" is
    # "demos" when the run has demonstrations, else "rlpd" (PRESETS). A value set wins.
    preset: str = "auto"
    num_critics: Optional[int] = None  # N, RLPD ensemble size
    critic_subset: int = 2  # M, members in the target min
    utd_ratio: Optional[int] = None  # critic updates per env step (actor: 1 per update() call)
    batch_size: int = 256  # minibatch per critic update (demo + online)
    demo_ratio: float = 0.5  # RLPD symmetric sampling
    discount: float = 0.99
    tau: float = 0.005  # Polyak factor
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temp_lr: float = 3e-4
    # Low start: with a 0/1 reward the entropy bonus at 0.05 kept the exploration noise large
    # enough to spoil grasps for thousands of updates (the temperature falls only ~3e-4 per update).
    init_temperature: float = 0.01
    target_entropy: Optional[float] = None  # None -> -|A_continuous| / 2
    # SERL: no entropy backup on sparse manipulation rewards; with it, alpha * H (~2 per step at
    # alpha=1) swamps a 0/1 reward and the critic learns to value randomness (Q ~ 8 >> 1).
    backup_entropy: bool = False
    # Weight of a behaviour-cloning term on the demo half of each actor minibatch (0 = plain
    # RLPD). Demonstration actions are in the normalised [-1, 1] action space.
    bc_weight: Optional[float] = None
    # Q-filtered BC (Nair et al., ICRA 2018): clone a demonstration's action only on the demo
    # states where the critic ensemble rates it above the policy's own action, Q(s, a_demo) >
    # Q(s, pi(s)); where the policy already does better, BC would only pull it back to the
    # demonstrator's (slower) behaviour. docs/learning.md, "Past the demonstrations".
    bc_q_filter: bool = False
    # > 0: the BC weight falls linearly from bc_weight to bc_final_weight over this many actor
    # updates (one per env step), then stays there; 0 keeps bc_weight throughout.
    bc_decay_updates: int = 0
    bc_final_weight: float = 0.0
    critic_layer_norm: bool = True
    actor_layer_norm: bool = False  # RLPD/SERL: LayerNorm in the critic only
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    # HIL-SERL discrete gripper
    discrete_gripper: bool = False
    gripper_dim: int = -1  # which env action dim is the gripper
    grasp_penalty: float = -0.02
    gripper_epsilon: float = 0.1  # epsilon-greedy for the gripper when exploring
    gripper_lr: float = 3e-4
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # runtime
    seed: int = 0
    device: str = "cpu"
    num_threads: Optional[int] = None  # torch.set_num_threads if set
    fused_optimizer: bool = True
    compile: bool = False  # torch.compile the critic/actor losses (see docs/learning.md)
    # "bf16": the critic and actor losses run under bfloat16 autocast (matmuls, convolutions and
    # the activations between them); weights, optimizer state, Q outputs, log-probs and losses
    # stay fp32. Needs native bf16 (AVX512-BF16/AMX CPU, or a CUDA GPU of compute capability 8+).
    precision: str = "fp32"
    tune_malloc: bool = True  # glibc: keep freed activation buffers (see tune_malloc)

    def resolved(self, with_demos: bool) -> "RLPDConfig":
        """This configuration with its preset applied: ``preset`` names the one used and every
        preset-dependent field is set. ``with_demos``: whether the run learns from
        demonstrations (decides ``auto``)."""
        name = self.preset if self.preset != "auto" else ("demos" if with_demos else "rlpd")
        fill = {k: v for k, v in PRESETS[name].items() if getattr(self, k) is None}
        return replace(self, preset=name, **fill)

    def validate(self) -> None:
        if self.preset != "auto" and self.preset not in PRESETS:
            raise FieldError("preset", f"must be auto or one of {sorted(PRESETS)}, got {self.preset!r}")
        could_apply = PRESETS.values() if self.preset == "auto" else [PRESETS[self.preset]]
        n = self.num_critics if self.num_critics is not None else min(p["num_critics"] for p in could_apply)
        if n < 1:
            raise ValueError(f"RLPDConfig.num_critics must be >= 1, got {self.num_critics}")
        if not 1 <= self.critic_subset <= n:
            raise ValueError(f"RLPDConfig.critic_subset must be in [1, num_critics={n}], got {self.critic_subset}")
        if self.utd_ratio is not None and self.utd_ratio < 1:
            raise ValueError(f"RLPDConfig.utd_ratio must be >= 1, got {self.utd_ratio}")
        if self.batch_size < 2:
            raise ValueError(f"RLPDConfig.batch_size must be >= 2, got {self.batch_size}")
        if not 0.0 <= self.demo_ratio < 1.0:
            raise ValueError(f"RLPDConfig.demo_ratio must be in [0, 1), got {self.demo_ratio}")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"RLPDConfig.discount must be in (0, 1], got {self.discount}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"RLPDConfig.tau must be in (0, 1], got {self.tau}")
        if self.init_temperature <= 0:
            raise ValueError(f"RLPDConfig.init_temperature must be > 0, got {self.init_temperature}")
        if not self.hidden_dims or any(h <= 0 for h in self.hidden_dims):
            raise ValueError(f"RLPDConfig.hidden_dims must be non-empty positive ints, got {self.hidden_dims}")
        if self.log_std_min >= self.log_std_max:
            raise ValueError("RLPDConfig.log_std_min must be < log_std_max")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"RLPDConfig.precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if not 0.0 <= self.gripper_epsilon <= 1.0:
            raise ValueError(f"RLPDConfig.gripper_epsilon must be in [0, 1], got {self.gripper_epsilon}")
        require_positive(self, "actor_lr", "critic_lr", "temp_lr", "gripper_lr")
        require(self, 0, "bc_decay_updates", "bc_final_weight")
        if self.bc_weight is not None:
            require(self, 0, "bc_weight")
        if self.num_threads is not None:
            require(self, 1, "num_threads")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RLPDConfig":
        """The project's one schema loader (``robot_rl.schema.from_dict``), as for ``agent:``."""
        try:
            return from_dict(cls, dict(d))
        except ConfigError as exc:
            raise ConfigError(f"RLPDConfig: {exc}") from None


@dataclass
class ActorConfig:
    """Actor node: runs the policy on a robot (or sim) and streams transitions."""
    actor_id: int = 0
    random_steps: int = 0             # uniform-random actions before the first weights arrive
    weights_timeout: float = 0.0      # s to wait for first weights; 0 = act with initial policy
    send_every: int = 1               # env steps per transition message (and at episode ends)
    reset_timeout: float = 10.0       # s for /scene/reset and the first observation after it
    max_reset_failures: int = 5       # consecutive failed resets before the actor stops
    observation_timeout: float = 5.0  # s to wait for a synchronized observation
    deterministic: bool = False       # act with the mean action (evaluation)
    max_message_bytes: int = 67108864  # larger weight messages are rejected
    # > 0: pause before a step while this actor is more than max_lead env steps ahead of the
    # learner's updates (each received step buys one update), so the lockstep sim runs only as
    # fast as the learner trains. The pause ends after learner_timeout s without new weights.
    max_lead: int = 0
    learner_timeout: float = 5.0
    # Transitions are kept until the learner acknowledges them as durable (docs/crash_safety.md):
    # in memory and appended to outbox_dir ("" = <learner.run_dir>/actors/actor_<actor_id>), so
    # a restarted actor resends them and continues its episode and step numbering.
    outbox_dir: str = ""
    outbox_max_bytes: int = 1073741824  # beyond this the oldest unacknowledged are dropped (counted)
    resend_after: float = 3.0         # s without acknowledgement progress before resending
    # Every evaluate_every env steps (0: never) a round of evaluate_episodes episodes with the
    # mean action and frozen weights, judged by the task's reward source with no intervention;
    # the best round's weights are kept for deployment (robot_rl/learning/evaluation_rounds.py).
    evaluate_every: int = 0
    evaluate_episodes: int = 10

    def validate(self) -> None:
        require(self, 0, "actor_id", "random_steps", "weights_timeout", "max_lead",
                "evaluate_every")
        if self.actor_id > 2**31 - 1:  # the replay stores actor ids as int32
            raise FieldError("actor_id", f"must be <= {2**31 - 1}, got {self.actor_id}")
        require_positive(self, "send_every", "reset_timeout", "max_reset_failures",
                         "observation_timeout", "learner_timeout", "outbox_max_bytes",
                         "resend_after", "evaluate_episodes")
        require(self, MIN_MESSAGE_BYTES, "max_message_bytes")


@dataclass
class LearnerConfig:
    """Learner node: trains from demos + streamed experience, publishes actor weights."""
    run_dir: str = "runs/train"
    demos: str = ""                   # folder of recorded demonstrations (replay format)
    capacity: int = 100_000
    min_online: int = 256             # online transitions before the first update
    publish_every: int = 25           # updates between actor-weight messages
    checkpoint_every: int = 1000      # updates between checkpoints
    resume: bool = False              # continue run_dir: checkpoint, buffers and counters
    flush_every: int = 1000           # online transitions per persisted replay chunk
    max_backlog: int = 1000           # env steps of update credit kept when training lags
    max_message_bytes: int = 67108864  # larger transition messages are rejected
    log_every: float = 5.0            # s between console lines / TensorBoard scalars
    tensorboard: bool = True          # write TensorBoard scalars to run_dir/tb
    # Received transitions are appended to run_dir/replay/wal.bin before they are acknowledged
    # to the actors: "batch" fsyncs once per drained group of messages (survives power loss),
    # "none" only writes (survives a learner crash, not an OS crash). docs/crash_safety.md.
    wal_fsync: str = "batch"
    checkpoint_period: float = 60.0   # s between checkpoints (as well as every checkpoint_every)
    ack_period: float = 1.0           # s between acknowledgements of every known actor
    actor_quiet_after: float = 10.0   # s without transitions before an actor is reported quiet

    def validate(self) -> None:
        require_positive(self, "capacity", "min_online", "publish_every", "checkpoint_every",
                         "flush_every", "max_backlog", "log_every", "checkpoint_period",
                         "ack_period", "actor_quiet_after")
        if self.wal_fsync not in ("batch", "none"):
            raise FieldError("wal_fsync", f"must be 'batch' or 'none', got {self.wal_fsync!r}")
        require(self, MIN_MESSAGE_BYTES, "max_message_bytes")
        if not self.run_dir:
            raise FieldError("run_dir", "must name a folder, got ''")
