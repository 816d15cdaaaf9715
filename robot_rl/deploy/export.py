"""``robot-rl export``: a policy module or a trained RLPD agent -> ONNX + metadata JSON.

The command over the two exporters: :mod:`robot_rl.deploy.onnx_export` (any policy module with a
metadata template) and :mod:`robot_rl.deploy.agent_export` (an RLPD learner checkpoint, metadata
built from the robot configuration). It sits above both so the imports flow one way: the agent
exporter uses the low-level one, and neither imports this command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from robot_rl.deploy.errors import ExportError, ExportParityError, MetadataError
from robot_rl.deploy.metadata import PolicyMetadata
from robot_rl.deploy.onnx_export import export_onnx, random_observations

__all__ = ["main", "build_arg_parser"]


def _load_module(args: argparse.Namespace) -> torch.nn.Module:
    if args.module:
        # weights_only=False unpickles arbitrary code: only load modules you produced.
        obj = torch.load(args.module, map_location="cpu", weights_only=False)
        if not isinstance(obj, torch.nn.Module):
            raise ExportError(
                f"{args.module} holds a {type(obj).__name__}, expected a whole torch.nn.Module saved with "
                f"torch.save(module, path) (a state_dict needs --factory to build the module)"
            )
        return obj
    mod_name, _, attr = args.factory.partition(":")
    if not mod_name or not attr:
        raise ExportError(f"--factory must look like 'package.module:callable', got {args.factory!r}")
    try:
        factory: Callable[..., Any] = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ExportError(f"cannot import factory {args.factory!r}: {exc}") from exc
    obj = factory(args.checkpoint) if args.checkpoint else factory()
    if not isinstance(obj, torch.nn.Module):
        raise ExportError(f"factory {args.factory!r} returned {type(obj).__name__}, expected a torch.nn.Module")
    return obj


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robot-rl export",
        description="Export a policy module to ONNX + metadata JSON with a torch/onnxruntime parity check.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--module", help="file written by torch.save(module) (whole module, trusted source only)")
    src.add_argument(
        "--factory",
        help="'package.module:callable' returning the export module; called with --checkpoint if given",
    )
    p.add_argument(
        "--checkpoint",
        help="with --config: a learner checkpoint (robot_rl.learning.checkpoint) of an RLPD agent; "
        "with --factory: the path passed to the factory",
    )
    p.add_argument(
        "--config",
        help="robot configuration YAML: export an RLPD agent checkpoint with metadata built from it "
        "(observations, actions, control rate, robot, joints); replaces --metadata",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (with --config)")
    p.add_argument("--run-id", default=None, help="with --config: training run id (default: the checkpoint's folder)")
    p.add_argument("--best", action="store_true",
                   help="with --config: the actor weights of the best evaluation round of the run "
                        "(actor.evaluate_every; actors/*/best_policy beside the checkpoint) "
                        "instead of the checkpoint's last")
    p.add_argument("--version", default="1.0.0", help="with --config: policy version recorded in the metadata")
    p.add_argument("--metadata", help="metadata JSON template (observations, action, robot, training)")
    p.add_argument("--out", required=True, help="destination .onnx path; the metadata JSON is written beside it")
    p.add_argument("--parity-samples", type=int, default=64)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--exporter", choices=["auto", "dynamo", "torchscript"], default="auto")
    p.add_argument("--opset", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``robot-rl export`` entry point.  Exit codes: 0 ok, 1 export error, 3 parity failure."""
    args = build_arg_parser().parse_args(argv)
    if args.config:
        # Agent export: robot_rl.deploy.agent_export builds the metadata from the config.
        if args.module or args.factory or args.metadata:
            print("error: --config exports an agent checkpoint; it excludes --module/--factory/--metadata",
                  file=sys.stderr)
            return 2
        if not args.checkpoint:
            print("error: --config needs --checkpoint (a learner checkpoint)", file=sys.stderr)
            return 2
        from robot_rl.deploy.agent_export import export_main

        return export_main(args)
    if not (args.module or args.factory):
        print("error: one of --config (with --checkpoint), --module or --factory is required", file=sys.stderr)
        return 2
    if not args.metadata:
        print("error: --metadata is required with --module/--factory", file=sys.stderr)
        return 2
    if args.checkpoint and not args.factory:
        print("error: --checkpoint needs --factory (or --config for an agent checkpoint)", file=sys.stderr)
        return 2
    try:
        metadata = PolicyMetadata.load(args.metadata)
        module = _load_module(args)
        # Example inputs come from the metadata itself: shapes/dtypes are the contract.
        example = random_observations(metadata, 2, np.random.default_rng(args.seed))
        result = export_onnx(
            module,
            example,
            metadata,
            args.out,
            parity_samples=args.parity_samples,
            atol=args.atol,
            exporter=args.exporter,
            opset=args.opset,
            seed=args.seed,
        )
    except ExportParityError as exc:
        print(f"export refused: {exc}", file=sys.stderr)
        return 3
    except (ExportError, MetadataError, OSError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    info = result.metadata.export
    assert info is not None
    print(
        f"wrote {result.onnx_path} and {result.metadata_path}\n"
        f"  exporter={info.exporter} opset={info.opset} parity max|diff|={info.parity_max_abs_diff:.2e} "
        f"(atol {info.parity_atol:.0e}) sha256={info.model_sha256[:16]}..."
    )
    return 0


if __name__ == "__main__":  # python -m robot_rl.deploy.export ...
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
