"""Single-observation policy latency: torch eager vs onnxruntime CPU (1 thread).

Models are sized like the default policy: a 256x256 MLP on a ~30-dim state, optionally
with a small CNN encoder on two 128x128 uint8 cameras.  Each model is exported with the
real ``export_onnx`` (parity-checked), then timed per call on one observation:

* torch eager: ``torch.from_numpy`` + ``inference_mode`` forward, 1 intra-op thread
  (same thread budget as onnxruntime; a second line shows torch's default threads);
* onnx policy: ``OnnxPolicy.__call__`` -- input validation, copy into preallocated
  buffers, IO-bound session run, copy of the action out (what the robot pays);
* onnx raw: bare ``InferenceSession.run`` with a feed dict, for reference.

    python bench/onnx_vs_torch.py [--iters 3000] [--no-cameras] [--exporter auto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from robot_rl.deploy.export import export_onnx  # noqa: E402
from robot_rl.deploy.metadata import ActionSpec, ObservationTerm, PolicyMetadata  # noqa: E402
from robot_rl.deploy.onnx_policy import OnnxPolicy, make_session_options  # noqa: E402

STATE_DIM = 30
ACTION_DIM = 7
CAM = (128, 128, 3)
DEFAULT_THREADS = torch.get_num_threads()


class CameraEncoder(nn.Module):
    def __init__(self, out: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, out), nn.LayerNorm(out),
        )

    def forward(self, image_u8: torch.Tensor) -> torch.Tensor:
        return self.net(image_u8.permute(0, 3, 1, 2).to(torch.float32) / 255.0)


class BenchPolicy(nn.Module):
    """Raw obs -> action with normalisation and action scaling inside (the export contract)."""

    def __init__(self, cameras: tuple[str, ...]):
        super().__init__()
        self.cameras = cameras
        self.register_buffer("mean", torch.zeros(STATE_DIM))
        self.register_buffer("std", torch.ones(STATE_DIM))
        self.register_buffer("scale", torch.full((ACTION_DIM,), 0.5))
        self.encoders = nn.ModuleDict({c: CameraEncoder() for c in cameras})
        width = STATE_DIM + 64 * len(cameras)
        self.mlp = nn.Sequential(nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, ACTION_DIM))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = [(obs["state"] - self.mean) / self.std]
        feats += [self.encoders[c](obs[c]) for c in self.cameras]
        return self.scale * torch.tanh(self.mlp(torch.cat(feats, dim=-1)))


def metadata_for(cameras: tuple[str, ...]) -> PolicyMetadata:
    terms = [ObservationTerm("state", (STATE_DIM,))] + [ObservationTerm(c, CAM, "uint8") for c in cameras]
    joints = tuple(f"joint_{i}" for i in range(ACTION_DIM))
    return PolicyMetadata(
        observations=tuple(terms), action=ActionSpec(joints, scale=(0.5,) * ACTION_DIM), control_rate_hz=20.0,
        robot_description_id="bench", joint_names=joints, training_run_id="bench", policy_version="0",
    )


def timeit(fn, iters: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(iters, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(iters):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out / 1e3  # microseconds


def row(name: str, us: np.ndarray) -> tuple[float, float]:
    p50, p99 = np.percentile(us, [50, 99])
    print(f"  {name:<28} p50 {p50:9.1f} us   p99 {p99:9.1f} us   mean {us.mean():9.1f} us")
    return p50, p99


def bench(cameras: tuple[str, ...], iters: int, exporter: str, workdir: Path) -> dict[str, float]:
    torch.manual_seed(0)
    module = BenchPolicy(cameras).eval()
    meta = metadata_for(cameras)
    rng = np.random.default_rng(0)
    obs = {"state": rng.standard_normal(STATE_DIM).astype(np.float32)}
    obs.update({c: rng.integers(0, 256, CAM, dtype=np.uint8) for c in cameras})
    example = {k: torch.from_numpy(v[None]) for k, v in obs.items()}
    path = workdir / f"policy_{len(cameras)}cam.onnx"
    res = export_onnx(module, example, meta, path, exporter=exporter)
    policy = OnnxPolicy(path, providers="cpu", intra_op_threads=1)
    session = ort.InferenceSession(str(path), make_session_options(1), providers=["CPUExecutionProvider"])
    feeds = {k: v[None] for k, v in obs.items()}

    def torch_call():
        with torch.inference_mode():
            return module({k: torch.from_numpy(v).unsqueeze(0) for k, v in obs.items()})[0].numpy()

    np.testing.assert_allclose(policy(obs), torch_call(), atol=1e-5)
    warm = max(50, iters // 10)
    label = "state MLP 256x256" + (f" + CNN on {len(cameras)} x 128x128 cams" if cameras else "")
    print(f"\n{label}  (exporter {res.metadata.export.exporter}, parity max|diff| {res.max_abs_diff:.1e}, "
          f"provider {policy.provider}, {iters} calls)")
    torch.set_num_threads(1)
    t_torch = row("torch eager (1 thread)", timeit(torch_call, iters, warm))
    torch.set_num_threads(DEFAULT_THREADS)
    row(f"torch eager ({DEFAULT_THREADS} threads)", timeit(torch_call, iters, warm))
    torch.set_num_threads(1)
    t_policy = row("OnnxPolicy (1 thread)", timeit(lambda: policy(obs), iters, warm))
    row("ort session.run (1 thread)", timeit(lambda: session.run(["action"], feeds), iters, warm))
    r50, r99 = t_torch[0] / t_policy[0], t_torch[1] / t_policy[1]
    verdict = "meets" if r50 >= 3.0 else "BELOW"
    print(f"  speed-up torch(1 thread) / OnnxPolicy: p50 {r50:.1f}x  p99 {r99:.1f}x  ({verdict} the 3x target)")
    return {"p50_ratio": r50, "p99_ratio": r99}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=3000, help="timed calls per configuration (cameras: /10)")
    ap.add_argument("--no-cameras", action="store_true", help="only the state-MLP policy")
    ap.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "torchscript"])
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, CPU threads available: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as d:
        bench((), args.iters, args.exporter, Path(d))
        if not args.no_cameras:
            bench(("cam_front", "cam_wrist"), max(100, args.iters // 10), args.exporter, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
