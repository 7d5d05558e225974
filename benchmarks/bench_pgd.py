"""``pgd``: our :func:`trainables.attacks.pgd_linf` against torchattacks' ``PGD``.

Same model (our ``stdcnn``, which normalises inside, so both attack raw [0, 1] pixels), same batch,
eps, step size and number of steps, both with a random start. torchattacks switches the model to
eval mode for the attack (its default) as ``pgd_linf`` does. With ``random_start=False`` the two
give the same adversarial examples (``tests/test_bench_equivalence.py``).
"""

from __future__ import annotations

import torch

from benchmarks._harness import Result, device_sync, ratio_result, skipped, time_alternating

EPS = 0.3
TARGET = 1.0  # ours at most 1.0x their time


def torchattacks_pgd(model: torch.nn.Module, eps: float, step_size: float, steps: int, **kw):
    """torchattacks' PGD on ``model`` (inputs in [0, 1], no normalisation of its own)."""
    import torchattacks

    return torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, **kw)


def _model(kind: str, device: str) -> torch.nn.Module:
    from trainables.models import build_model

    channels, size = (1, 28) if kind == "28x28x1" else (3, 32)
    torch.manual_seed(0)
    model = build_model(
        "stdcnn", channels, 10, size, mean=(0.5,) * channels, std=(0.25,) * channels
    )
    return model.to(device).eval()


def run(quick: bool, device: str) -> list[Result]:
    from trainables.attacks import pgd_linf

    kinds = ("28x28x1",) if quick else ("28x28x1", "32x32x3")
    try:
        import torchattacks  # noqa: F401
    except ImportError:
        return [
            skipped(f"pgd {k}", "torchattacks is not installed (pip install torchattacks)", ">= 1x")
            for k in kinds
        ]
    batch = 128 if quick else 256
    steps = 5 if quick else 10
    step_size = 0.01 * 40 / steps  # MNIST's travel of 40 x 0.01, in fewer, larger steps
    repeats = 5 if quick else 9
    sync = device_sync(device)
    results = []
    for kind in kinds:
        model = _model(kind, device)
        channels, size = (1, 28) if kind == "28x28x1" else (3, 32)
        generator = torch.Generator().manual_seed(0)
        x = torch.rand(batch, channels, size, size, generator=generator).to(device)
        y = torch.randint(0, 10, (batch,), generator=generator).to(device)
        attack = torchattacks_pgd(model, EPS, step_size, steps, random_start=True)

        def ours(model: torch.nn.Module = model, x: torch.Tensor = x, y: torch.Tensor = y):
            pgd_linf(model, x, y, EPS, step_size, steps, random_start=True)

        def theirs(attack=attack, x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            attack(x, y)

        timing = time_alternating(ours, theirs, repeats=repeats, warmup=1, sync=sync)
        results.append(
            ratio_result(
                f"pgd {kind}",
                timing,
                min_ratio=TARGET,
                cpu_note=device == "cpu",
                note=(
                    f"stdcnn, batch {batch}, eps {EPS}, {steps} steps of {step_size:g}, random "
                    f"start; torchattacks {_version()}"
                ),
            )
        )
    return results


def _version() -> str:
    import torchattacks

    return str(getattr(torchattacks, "__version__", "?"))
