"""``python -m benchmarks [--quick] [--device cpu|cuda] [--only NAME ...] [--json FILE]``."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import discover, load
from benchmarks._harness import Result, format_table


def _parser(names: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time cusp-tune against the baselines it replaces, side by side, as ratios.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and fewer repeats (< 2 min on 2 cores)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", choices=list(names), help=f"of: {', '.join(names)}"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads (default 1, as in a Ray trial with resources.cpu=1; "
        "0 keeps torch's default of one per core)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


def _machine(device: str) -> str:
    import torch

    parts = [
        f"python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"{os.cpu_count()} CPU cores ({torch.get_num_threads()} torch threads)",
        platform.processor() or platform.machine(),
    ]
    if device == "cuda":
        parts.append(torch.cuda.get_device_name())
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    names = discover()
    args = _parser(names).parse_args(argv)
    if args.list:
        print("\n".join(names))
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                "error: --device cuda but no CUDA GPU is visible; use --device cpu", file=sys.stderr
            )
            return 2
    if args.threads < 0:
        print("error: --threads must be 0 (torch's default) or more", file=sys.stderr)
        return 2
    if args.json and not Path(args.json).resolve().parent.is_dir():
        print(f"error: --json {args.json}: no such directory; create it first", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    selected = args.only or names
    mode = "quick" if args.quick else "full"
    print(f"benchmarks ({mode}, device {args.device}): {_machine(args.device)}", flush=True)
    results: list[Result] = []
    failed: list[str] = []
    start = time.perf_counter()
    for name in selected:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            rows = load(name).run(args.quick, args.device)
        except Exception:
            failed.append(name)
            print(f"benchmark {name} failed:\n{traceback.format_exc()}", file=sys.stderr)
            continue
        results.extend(rows)
        took = time.perf_counter() - began
        print(f"  {name} took {took:.1f} s", file=sys.stderr, flush=True)
    _shutdown_ray()
    total = time.perf_counter() - start
    print()
    print(format_table(results))
    print(f"\ntotal {total:.1f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if args.json:
        payload = {
            "mode": mode,
            "device": args.device,
            "machine": _machine(args.device),
            "total_s": total,
            "failed": failed,
            "results": [_finite(r.to_dict()) for r in results],
        }
        text = json.dumps(payload, indent=2, allow_nan=False)
        tmp = Path(args.json).with_name(f".{Path(args.json).name}.tmp")
        tmp.write_text(text)
        tmp.replace(args.json)  # never a half-written file
    return 1 if failed else 0


def _finite(value: Any) -> Any:
    """``value`` with infinite or NaN numbers as null, at any depth (JSON has no Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _shutdown_ray() -> None:
    """Stop the local Ray a benchmark started (it is shared by the Ray benchmarks)."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
