"""Learned success detector (HIL-SERL's reward classifier) for rewards on a real robot.

1. Collect labelled frames: during teleoperation the operator holds the success button/key
   (Joy ``buttons[2]``) while the task is achieved; ``robot-rl reward-classifier collect --out
   DIR`` (or the reward node in record mode, ``hil.reward.record_dir``) stores camera frames
   and labels with ``FrameRecorder``. In the
   MuJoCo stand-in ``collect_sim_frames`` renders labelled frames from the scripted success.
2. Train: ``robot-rl reward-classifier train --data f.npz --out DIR``: a frozen
   image encoder (ResNet-10 with local pretrained safetensors weights, or a fixed random SmallCNN)
   and a small trainable head (column-mean pooling + MLP), binary cross-entropy, negatives
   weighted up so false positives (rewarding failure) are rare; prints held-out accuracy and
   false-positive rate.
3. Serve: ``RewardClassifier.load(DIR).predict(images) -> probability``; the reward node
   publishes /task/success and /task/reward per frame, and the ROS env ends an episode after
   ``hil.reward.consecutive`` successes in a row (``hil.reward.source: classifier``).

Files: frames ``.npz`` (``images_<camera>`` uint8 N×H×W×3, ``labels`` uint8 N, ``episode``
int32 N, ``stamp`` float64 N; read with ``allow_pickle=False``); model folder with
``model.safetensors`` (all weights) + ``model.json`` (architecture, cameras, threshold, metrics).
No pickle anywhere.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

FORMAT = "robot_rl.reward_classifier/1"


# -- labelled frames --------------------------------------------------------------------------
class FrameRecorder:
    """Accumulates (frames of every camera, label, episode, stamp) and writes one .npz."""

    def __init__(self, cameras: list[str]):
        if not cameras:
            raise ValueError("FrameRecorder needs at least one camera name")
        self.cameras = list(cameras)
        self.images: dict[str, list[np.ndarray]] = {c: [] for c in self.cameras}
        self.labels: list[int] = []
        self.episodes: list[int] = []
        self.stamps: list[float] = []

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, images: dict[str, np.ndarray], label: bool, episode: int = 0,
            stamp: float = 0.0) -> None:
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise ValueError(f"frame lacks camera(s) {missing}")
        for c in self.cameras:
            image = np.asarray(images[c])
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"camera {c}: expected uint8 H×W×3, got {image.dtype} "
                                 f"{image.shape}")
            if self.images[c] and image.shape != self.images[c][0].shape:
                raise ValueError(f"camera {c}: frame shape {image.shape} differs from the "
                                 f"first frame's {self.images[c][0].shape}")
            self.images[c].append(image.copy())
        self.labels.append(int(bool(label)))
        self.episodes.append(int(episode))
        self.stamps.append(float(stamp))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"images_{c}": np.stack(v) for c, v in self.images.items()}
        np.savez_compressed(path, labels=np.array(self.labels, np.uint8),
                            episode=np.array(self.episodes, np.int32),
                            stamp=np.array(self.stamps, np.float64), **arrays)
        return path


def load_frames(paths) -> dict[str, np.ndarray]:
    """Concatenate .npz frame files; episode ids are offset so files never share an episode."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    parts: list[dict[str, np.ndarray]] = []
    offset = 0
    for p in paths:
        with np.load(p, allow_pickle=False) as data:
            d = {k: data[k] for k in data.files}
        if "labels" not in d or not any(k.startswith("images_") for k in d):
            raise ValueError(f"{p}: not a frames file (needs 'labels' and 'images_<camera>')")
        d.setdefault("episode", np.zeros(len(d["labels"]), np.int32))
        d["episode"] = d["episode"].astype(np.int64) + offset
        offset = int(d["episode"].max()) + 1 if len(d["episode"]) else offset
        parts.append(d)
    keys = set(parts[0])
    for p, d in zip(paths, parts):
        if set(d) != keys:
            raise ValueError(f"{p}: has {sorted(d)}, the first file has {sorted(keys)}")
    return {k: np.concatenate([d[k] for d in parts]) for k in keys if k != "stamp"}


def collect_sim_frames(episodes: int, camera: str = "front", size: int = 64, seed: int = 0,
                       steps: int = 45, near_miss_every: int = 3, exclude_transition: bool = True,
                       transition_from: float = 0.02, cfg=None) -> dict[str, np.ndarray]:
    """Labelled frames rendered in the in-process MuJoCo stand-in, labelled by the scripted
    success (cube lifted ``task.lift_height`` and held). The scripted expert picks the cube and
    keeps holding it up (positives; negatives before that: cube on the table, gripper
    approaching, grasping, lifting but not yet high enough = near-success); every
    ``near_miss_every``-th episode it grasps 4 cm beside the cube and lifts an empty gripper
    (near-miss negatives). With ``exclude_transition``, frames where the cube is on its way up
    (``transition_from`` m lifted but not yet a success) are left out, as a human labeller
    would not be asked to call them."""
    from robot_rl.config import load_config
    from robot_rl.envs.expert import PickExpert
    from robot_rl.envs.pick_cube import PickCubeEnv
    from robot_rl.envs.task import CUBE_HALF

    cfg = cfg or load_config(None, {"task.observations": ["state"],
                                    "cameras": [{"name": camera, "width": size, "height": size}]})
    cam = next(c for c in cfg.cameras if c.name == camera)
    env = PickCubeEnv(cfg)
    rng = np.random.default_rng(seed)
    rec = FrameRecorder([camera])
    try:
        for ep in range(episodes):
            env.reset(seed=seed * 1000 + ep)
            expert = PickExpert(cfg.task.max_step_pos, cfg.task.lift_height, noise=0.1, rng=rng)
            miss = near_miss_every > 0 and ep % near_miss_every == near_miss_every - 1
            shift = np.array([0.0, rng.choice([-1, 1]) * 0.045, 0.0]) if miss else np.zeros(3)
            for _ in range(steps):
                snap = env._snap
                guided = type(snap)(**{**snap.__dict__, "object_pos": snap.object_pos + shift})
                env.step(expert.act(guided))
                snap = env._snap
                success = env.task.success(snap)
                lift = snap.object_pos[2] - CUBE_HALF
                if exclude_transition and not success and lift >= transition_from:
                    continue  # cube on its way up: neither clearly success nor clearly not
                image = env.world.camera_frame(cam)[0]
                rec.add({camera: image}, success, ep, snap.stamp)
    finally:
        env.close()
    return {"labels": np.array(rec.labels, np.uint8),
            "episode": np.array(rec.episodes, np.int64),
            f"images_{camera}": np.stack(rec.images[camera])}


# -- the model ----------------------------------------------------------------------------------
def _torch():
    import torch
    return torch


def build_model(cameras: list[str], image_shape, encoder: str = "small", pretrained: str = "",
                seed: int = 0, hidden: int = 64):
    """Frozen trunk (the first stages of SmallCNN or ResNet-10: 1/4 resolution) -> mean over
    image columns (keeps the vertical position, e.g. the cube's height above the table in a
    front view, and ignores where along the table it is) -> standardised (statistics of the
    training frames) -> MLP head, per camera, concatenated."""
    import torch
    import torch.nn as nn

    from robot_rl.learning.networks import ResNet10, SmallCNN, _to_float_nchw

    class _ResNetStem(nn.Module):
        """ResNet-10's normalisation, stem and first stage (64 channels at 1/4 resolution)."""

        def __init__(self, net):
            super().__init__()
            self.stem, self.block = net.stem, net.blocks[0]
            self.register_buffer("mean", net.mean.clone())
            self.register_buffer("std", net.std.clone())

        def forward(self, x):
            return self.block(self.stem((x - self.mean) / self.std))

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            if encoder == "small":
                cnn = SmallCNN(3, 32)
                self.encoder = nn.Sequential(*list(cnn.net)[:4])
            elif encoder == "resnet10":
                net = ResNet10(3)
                if pretrained:
                    net.load_pretrained(pretrained)
                self.encoder = _ResNetStem(net)
            else:
                raise ValueError(f"encoder {encoder!r}: expected 'small' or 'resnet10'")
            self.encoder.requires_grad_(False)
            self.encoder.eval()
            h, w = int(image_shape[0]), int(image_shape[1])
            with torch.no_grad():
                feat = self.encoder(torch.zeros(1, 3, h, w))
            dim = feat.shape[1] * feat.shape[2]
            n = len(cameras)
            self.register_buffer("feat_mean", torch.zeros(n * dim))
            self.register_buffer("feat_std", torch.ones(n * dim))
            self.head = nn.Sequential(nn.Linear(n * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def train(self, mode: bool = True):
            super().train(mode)
            self.encoder.eval()  # frozen: always in inference mode
            return self

        @torch.no_grad()
        def features(self, images: list):
            """Per-camera uint8 N×H×W×3 tensors -> raw pooled features N×D (no gradient)."""
            return torch.cat([self.encoder(_to_float_nchw(x)).mean(3).flatten(1)
                              for x in images], dim=1)

        def logits_from_features(self, feats):
            return self.head((feats - self.feat_mean) / self.feat_std).squeeze(1)

        def forward(self, images: list):
            return self.logits_from_features(self.features(images))

    return Classifier()


class RewardClassifier:
    """``predict(images)``: success probability per frame. ``images``: an H×W×3 / N×H×W×3 uint8
    array (one camera) or a dict camera -> array."""

    def __init__(self, model, meta: dict):
        self.model = model.eval()
        self.meta = meta
        self.cameras: list[str] = meta["cameras"]
        self.image_shape = tuple(meta["image_shape"])
        self.threshold = float(meta.get("threshold", 0.5))

    @classmethod
    def create(cls, cameras, image_shape, encoder="small", pretrained="", seed=0,
               threshold=0.5) -> "RewardClassifier":
        model = build_model(cameras, image_shape, encoder, pretrained, seed)
        meta = {"format": FORMAT, "cameras": list(cameras), "image_shape": list(image_shape),
                "encoder": encoder, "seed": seed, "threshold": threshold,
                "pretrained": Path(pretrained).name if pretrained else ""}
        return cls(model, meta)

    def _batch(self, images) -> list:
        torch = _torch()
        if not isinstance(images, dict):
            if len(self.cameras) != 1:
                raise ValueError(f"this classifier needs a dict of cameras {self.cameras}")
            images = {self.cameras[0]: images}
        out = []
        for c in self.cameras:
            if c not in images:
                raise ValueError(f"missing camera {c!r}; the classifier uses {self.cameras}")
            x = np.asarray(images[c])
            if x.ndim == 3:
                x = x[None]
            if x.dtype != np.uint8 or tuple(x.shape[1:]) != self.image_shape:
                raise ValueError(f"camera {c}: expected uint8 N×{'×'.join(map(str, self.image_shape))}"
                                 f", got {x.dtype} {x.shape} (configure the camera's "
                                 f"resize to match the training frames)")
            out.append(torch.from_numpy(np.ascontiguousarray(x)))
        return out

    def predict(self, images) -> np.ndarray:
        torch = _torch()
        with torch.no_grad():
            return torch.sigmoid(self.model(self._batch(images))).numpy()

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        (folder / "model.json").write_text(json.dumps(self.meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "RewardClassifier":
        from safetensors.torch import load_file
        folder = Path(folder)
        meta = read_meta(folder)
        if not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"{folder}: expected model.json and model.safetensors (written "
                                    f"by `robot-rl reward-classifier train`)")
        model = build_model(meta["cameras"], meta["image_shape"], meta["encoder"], "",
                            meta.get("seed", 0))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return cls(model, meta)


def read_meta(folder: str | Path) -> dict:
    """A model folder's ``model.json`` (cameras, image shape...), without loading weights."""
    folder = Path(folder)
    if not (folder / "model.json").is_file():
        raise FileNotFoundError(f"{folder}: expected model.json and model.safetensors (written "
                                f"by `robot-rl reward-classifier train`)")
    try:
        meta = json.loads((folder / "model.json").read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{folder}/model.json is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{folder}/model.json: format {found!r}, expected {FORMAT}")
    return meta


def check_against_config(meta: dict, cfg, where: str = "the reward classifier") -> None:
    """Refuse a classifier whose cameras or image size differ from what the configured cameras
    deliver (``cameras[].name``, ``output_size`` after crop/resize): it would never see a frame,
    or judge frames it was not trained on."""
    delivered = {c.name: (c.output_size[1], c.output_size[0]) for c in cfg.cameras}
    wanted = list(meta.get("cameras", []))
    shape = tuple(meta.get("image_shape", ()))[:2]
    missing = [c for c in wanted if c not in delivered]
    if missing:
        raise ValueError(
            f"{where}: trained on cameras {wanted}, but the configuration has no camera "
            f"{missing} (configured: {sorted(delivered) or 'none'}); configure cameras with "
            f"those names or train on the configured ones")
    wrong = {c: delivered[c] for c in wanted if delivered[c] != shape}
    if wrong:
        found = ", ".join(f"{c} delivers {h}x{w}" for c, (h, w) in wrong.items())
        raise ValueError(
            f"{where}: trained on {shape[0]}x{shape[1]} (height x width) frames of {wanted}, "
            f"but {found}; set the camera's resize to [{shape[1]}, {shape[0]}] (width, height) "
            f"or retrain on frames of the configured size")


def require_both_labels(labels: np.ndarray, source: str) -> None:
    """Training on frames without a success label (or without a failure label) would learn a
    constant: say so, with what to do."""
    positives = int(np.sum(labels))
    if positives == 0:
        raise ValueError(f"{source}: none of the {len(labels)} frames is labelled success; "
                         f"training would learn 'never'. Record frames while the operator "
                         f"holds the success button (Joy buttons[2], e.g. the gamepad's Y) "
                         f"whenever the task is achieved")
    if positives == len(labels):
        raise ValueError(f"{source}: all {len(labels)} frames are labelled success; record "
                         f"frames where the task is not achieved too")


# -- training and evaluation ---------------------------------------------------------------
def metrics(prob: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    pred = prob >= threshold
    labels = labels.astype(bool)
    neg = max(1, int((~labels).sum()))
    pos = max(1, int(labels.sum()))
    return {"n": int(len(labels)), "positives": int(labels.sum()),
            "accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
            "false_positive_rate": float((pred & ~labels).sum() / neg),
            "false_negative_rate": float((~pred & labels).sum() / pos)}


def split_by_episode(data: dict, val_fraction: float, seed: int = 0):
    episodes = np.unique(data["episode"])
    rng = np.random.default_rng(seed)
    rng.shuffle(episodes)
    n_val = max(1, int(round(len(episodes) * val_fraction))) if val_fraction > 0 else 0
    if n_val >= len(episodes):
        raise ValueError(f"{len(episodes)} episode(s) cannot be split {val_fraction:.0%} held out")
    val = np.isin(data["episode"], episodes[:n_val])
    return ({k: v[~val] for k, v in data.items()}, {k: v[val] for k, v in data.items()})


def train(data: dict, cameras: list[str] | None = None, encoder: str = "small",
          pretrained: str = "", steps: int = 600, batch: int = 128, lr: float = 1e-3,
          negative_weight: float = 2.0, seed: int = 0, threshold: float = 0.5,
          log=print) -> RewardClassifier:
    """Train the head on frozen-encoder features (computed once); ``negative_weight`` > 1
    trades false negatives for fewer false positives."""
    torch = _torch()
    cameras = cameras or sorted(k[len("images_"):] for k in data if k.startswith("images_"))
    labels = data["labels"].astype(np.float32)
    require_both_labels(labels, "training frames")
    shape = data[f"images_{cameras[0]}"].shape[1:]
    clf = RewardClassifier.create(cameras, shape, encoder, pretrained, seed, threshold)
    model = clf.model
    start = time.perf_counter()
    feats = []
    for c in cameras:
        x = torch.from_numpy(data[f"images_{c}"])
        feats.append(torch.cat([model.features([x[i:i + 256]]) for i in range(0, len(x), 256)]))
    feats = torch.cat(feats, dim=1)
    model.feat_mean.copy_(feats.mean(0))
    model.feat_std.copy_(feats.std(0) + 1e-3)
    y = torch.from_numpy(labels)
    pos = float(labels.sum())
    weights = torch.where(y > 0.5, torch.tensor(len(labels) / (2 * pos)),
                          torch.tensor(negative_weight * len(labels) / (2 * (len(labels) - pos))))
    opt = torch.optim.Adam(model.head.parameters(), lr=lr, weight_decay=1e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny head: thread hand-offs cost more than they bring
    try:
        _fit(model, opt, feats, y, weights, steps, batch, gen, log)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        prob = torch.sigmoid(model.logits_from_features(feats)).numpy()
    clf.meta["train"] = {**metrics(prob, labels, threshold),
                         "seconds": round(time.perf_counter() - start, 2), "steps": steps}
    return clf


def _fit(model, opt, feats, y, weights, steps, batch, gen, log) -> None:
    torch = _torch()
    for step in range(steps):
        idx = torch.randint(0, len(y), (min(batch, len(y)),), generator=gen)
        logits = model.logits_from_features(feats[idx])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx],
                                                                    weight=weights[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log and (step + 1) % max(1, steps // 4) == 0:
            log(f"step {step + 1}/{steps}: loss {loss.item():.4f}")


def evaluate(clf: RewardClassifier, data: dict) -> dict:
    probs = np.concatenate([
        clf.predict({c: data[f"images_{c}"][i:i + 256] for c in clf.cameras})
        for i in range(0, len(data["labels"]), 256)]) if len(data["labels"]) else np.zeros(0)
    return metrics(probs, data["labels"], clf.threshold)


def _report(name: str, m: dict) -> str:
    return (f"{name}: accuracy {m['accuracy']:.3f}, false-positive rate "
            f"{m['false_positive_rate']:.3f}, false-negative rate {m['false_negative_rate']:.3f} "
            f"({m['n']} frames, {m['positives']} success)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="robot-rl reward-classifier",
        description="train/evaluate the success classifier; `robot-rl reward-classifier "
                    "collect --out DIR` records labelled frames of a running graph (ROS 2)")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train on labelled frames (.npz), hold out episodes")
    tr.add_argument("--data", nargs="+", required=True)
    tr.add_argument("--out", required=True, help="model folder")
    tr.add_argument("--cameras", nargs="*", default=None)
    tr.add_argument("--encoder", choices=["small", "resnet10"], default="small")
    tr.add_argument("--pretrained", default="", help="local ResNet-10 .safetensors weights")
    tr.add_argument("--steps", type=int, default=600)
    tr.add_argument("--negative-weight", type=float, default=2.0)
    tr.add_argument("--val-fraction", type=float, default=0.25)
    tr.add_argument("--threshold", type=float, default=0.5)
    tr.add_argument("--seed", type=int, default=0)
    ev = sub.add_parser("eval", help="accuracy and false-positive rate on labelled frames")
    ev.add_argument("--model", required=True)
    ev.add_argument("--data", nargs="+", required=True)
    sim = sub.add_parser("sim-frames", help="render labelled frames in the MuJoCo stand-in")
    sim.add_argument("--out", required=True)
    sim.add_argument("--episodes", type=int, default=24)
    sim.add_argument("--camera", default="front")
    sim.add_argument("--size", type=int, default=64)
    sim.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "sim-frames":
            d = collect_sim_frames(args.episodes, args.camera, args.size, args.seed)
            np.savez_compressed(args.out, **d)
            print(f"{args.out}: {len(d['labels'])} frames, {int(d['labels'].sum())} success")
            return 0
        data = load_frames(args.data)
        if args.command == "train":
            require_both_labels(data["labels"], ", ".join(map(str, args.data)))
        if args.command == "eval":
            clf = RewardClassifier.load(args.model)
            print(_report("evaluation", evaluate(clf, data)))
            return 0
        train_set, val_set = split_by_episode(data, args.val_fraction, args.seed)
        clf = train(train_set, args.cameras, args.encoder, args.pretrained, args.steps,
                    negative_weight=args.negative_weight, seed=args.seed,
                    threshold=args.threshold)
        print(_report("train", clf.meta["train"]))
        if len(val_set["labels"]):
            clf.meta["held_out"] = evaluate(clf, val_set)
            print(_report("held-out", clf.meta["held_out"]))
        clf.save(args.out)
        print(f"saved {args.out}/model.safetensors and model.json")
        return 0
    except (ValueError, FileNotFoundError) as exc:  # ConfigError is a ValueError
        print(f"reward_classifier: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
