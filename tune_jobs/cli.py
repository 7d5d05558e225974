"""The ``cusp-tune`` command line.

Each sub-command is a small function ``(args) -> int``. A ``UserError`` anywhere becomes one line
on stderr and exit code 2; this module is the only place that prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainables.errors import UserError
from tune_jobs._overrides import load_yaml_mapping, parse_overrides

PROG = "cusp-tune"


def _format_epoch(metrics: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {metrics['epoch']:>3}/{epochs}  "
        f"theta {metrics['theta']:5.1f}  eps {metrics['eps']:.4f}  lr {metrics['lr']:.4g}  "
        f"loss {metrics['loss']:.4f}  clean {metrics['clean_acc']:.3f}  "
        f"spatial {metrics['spatial_acc']:.3f}  adv {metrics['adv_acc']:.3f}  "
        f"combined {metrics['combined_acc']:.3f}  inv {metrics['invariance_rate']:.3f}  "
        f"{metrics['epoch_time_s']:.1f}s"
    )


def cmd_train(args: argparse.Namespace) -> int:
    """Train and evaluate one model, without Ray."""
    from tqdm import tqdm

    from trainables.config import TrialConfig
    from trainables.datasets import load_dataset
    from trainables.trial import Trial

    values: dict[str, Any] = load_yaml_mapping(args.config) if args.config else {}
    values.update(parse_overrides(args.set or []))
    config = TrialConfig.from_dict(values)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not empty; choose a new directory")
    dataset = load_dataset(config.dataset, config.data_dir, download=config.download)
    trial = Trial(config, dataset)
    print(
        f"training {config.model} on {config.dataset} ({trial.train_images.shape[0]} images) "
        f"for {config.epochs} epochs on {trial.device}, method {config.method}, "
        f"curriculum {trial.curriculum.describe()}",
        flush=True,
    )
    metrics: dict[str, Any] = {}
    with tqdm(total=config.epochs, desc="epochs", unit="epoch", file=sys.stderr) as bar:
        for metrics in trial.epochs():
            bar.update(1)
            tqdm.write(_format_epoch(metrics, config.epochs), file=sys.stdout)
    print("final metrics (full test set):")
    for key, value in metrics.items():
        if isinstance(value, float) and ("acc" in key or key == "invariance_rate"):
            print(f"  {key:<22} {value:.4f}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        trial.save(out)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"checkpoint and metrics written to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Multi-objective searches over spatial/adversarial robustness curricula.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train and evaluate one model (no search)",
        description="Train one model on one curriculum and print its robustness metrics.",
    )
    train.add_argument(
        "config", nargs="?", help="YAML file of trial settings (flat key: value mapping)"
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set epochs=3 --set theta_max=90 (repeatable)",
    )
    train.add_argument("--out", help="directory to write the checkpoint and metrics.json")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
