"""Single-observation policy latency: torch eager vs onnxruntime CPU (1 thread).

The policies are the real ones: ``make_agent(cfg)`` builds the RLPD agent for the task, and
``export_agent`` exports its deterministic policy (encoders, input normalisation, actor,
action scaling) with the parity check, exactly as ``robot-rl export`` does.  Weights are
the agent's initial ones; the cost of a call does not depend on their values.

* ``default``: the default configuration (``task.observations: [state, tactile]``), the
  policy the target is set for;
* ``cameras``: the same plus the two 128x128 cameras through the default small CNN.

Each policy is timed per call on one observation:

* torch eager: ``torch.from_numpy`` + ``inference_mode`` forward of ``agent.export_module()``,
  1 intra-op thread (the budget onnxruntime gets); a second line with torch's default threads;
* OnnxPolicy: ``OnnxPolicy.__call__`` -- input validation, copy into preallocated buffers,
  IO-bound session run, copy of the action out (what the controller pays);
* ort session.run: the bare ``InferenceSession.run`` with a feed dict, for reference.

The FLOPs of a call (``torch.utils.flop_counter``) and a 1-thread ``torch.mm`` reference show
how close each runtime gets to what one core can do.

    python bench/onnx_vs_torch.py [--iters 3000] [--no-cameras]
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
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from robot_rl.config import load_config  # noqa: E402
from robot_rl.deploy.agent_export import export_agent, make_agent  # noqa: E402
from robot_rl.deploy.onnx_export import random_observations  # noqa: E402
from robot_rl.deploy.onnx_policy import OnnxPolicy, make_session_options  # noqa: E402

DEFAULT_THREADS = torch.get_num_threads()
POLICIES = {
    "default": {},
    "cameras": {"task.observations": ["state", "tactile", "images"]},
}


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


def row(name: str, us: np.ndarray, flops: float) -> tuple[float, float]:
    p50, p99 = np.percentile(us, [50, 99])
    print(f"  {name:<26} p50 {p50:8.1f} us   p99 {p99:8.1f} us   mean {us.mean():8.1f} us"
          f"   {flops / p50 / 1e3:6.1f} GFLOP/s at p50")
    return p50, p99


def one_thread_mm_gflops(n: int = 512, seconds: float = 1.0) -> float:
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b, out=c)
        calls += 1
    return calls * 2 * n**3 / (time.perf_counter() - t0) / 1e9


def bench(label: str, overrides: dict, iters: int, workdir: Path) -> dict[str, float]:
    cfg = load_config(None, overrides)
    agent = make_agent(cfg)
    path = workdir / f"{label}.onnx"
    res = export_agent(agent, cfg, path, run_id="bench")
    module = agent.export_module()
    policy = OnnxPolicy(path, providers="cpu", intra_op_threads=1)
    session = ort.InferenceSession(str(path), make_session_options(1), providers=["CPUExecutionProvider"])
    feeds = random_observations(res.metadata, 1, np.random.default_rng(0))
    obs = {k: v[0] for k, v in feeds.items()}

    def torch_call():
        with torch.inference_mode():
            return module({k: torch.from_numpy(v).unsqueeze(0) for k, v in obs.items()})[0].numpy()

    np.testing.assert_allclose(policy(obs), torch_call(), atol=1e-5)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module({k: torch.from_numpy(v) for k, v in feeds.items()})
    flops = float(counter.get_total_flops())
    shapes = ", ".join(f"{t.name} {'x'.join(map(str, t.shape))} {t.dtype}" for t in res.metadata.observations)
    print(f"\n{label} policy: {shapes}")
    print(f"  exporter {res.metadata.export.exporter}, parity max|diff| {res.max_abs_diff:.1e}, provider "
          f"{policy.provider}, {flops / 1e6:.2f} MFLOP per call, {iters} calls")
    warm = max(50, iters // 10)
    torch.set_num_threads(1)
    t_torch = row("torch eager (1 thread)", timeit(torch_call, iters, warm), flops)
    torch.set_num_threads(DEFAULT_THREADS)
    row(f"torch eager ({DEFAULT_THREADS} threads)", timeit(torch_call, iters, warm), flops)
    torch.set_num_threads(1)
    t_policy = row("OnnxPolicy (1 thread)", timeit(lambda: policy(obs), iters, warm), flops)
    row("ort session.run (1 thread)", timeit(lambda: session.run(["action"], feeds), iters, warm), flops)
    r50, r99 = t_torch[0] / t_policy[0], t_torch[1] / t_policy[1]
    verdict = "meets" if r50 >= 3.0 else "below"
    print(f"  speed-up torch (1 thread) / OnnxPolicy: p50 {r50:.1f}x  p99 {r99:.1f}x  ({verdict} 3x)")
    return {"p50_ratio": r50, "p99_ratio": r99}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=3000, help="timed calls per policy (cameras: /10)")
    ap.add_argument("--no-cameras", action="store_true", help="only the default policy")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    mm = one_thread_mm_gflops()
    torch.set_num_threads(DEFAULT_THREADS)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, torch threads by default: "
          f"{DEFAULT_THREADS}; 1-thread torch.mm 512^3: {mm:.0f} GFLOP/s")
    with tempfile.TemporaryDirectory() as d:
        for label, overrides in POLICIES.items():
            if label == "cameras" and args.no_cameras:
                continue
            bench(label, overrides, args.iters if label == "default" else max(100, args.iters // 10), Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
