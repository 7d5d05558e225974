"""``gcnn``: forward time of an e2cnn model in eval mode against its exported plain-torch module.

Ours: :func:`trainables.models.export_model` of the model (plain ``nn.Sequential``, eval mode),
the module that trials evaluate with. Baseline: the e2cnn ``EquivariantCNN`` itself in eval mode
(e2cnn caches the expanded filters in eval mode, so this is its fast path). Batch of 256 random
28x28x1 images in [0, 1], ``torch.no_grad()``. The two must give the same logits (checked).
"""

from __future__ import annotations

import torch

from benchmarks._harness import Result, device_sync, ratio_result, time_alternating

BATCH = 256


def run(quick: bool, device: str) -> list[Result]:
    from trainables.models import build_model, export_model

    repeats = 5 if quick else 15
    sync = device_sync(device)
    results = []
    for name in ("gcnn-c4", "gcnn-c8"):
        torch.manual_seed(0)
        model = build_model(name, 1, 10, 28, mean=(0.13,), std=(0.31,)).to(device).eval()
        exported = export_model(model).to(device).eval()
        x = torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            difference = (model(x) - exported(x)).abs().max().item()

        def ours(exported: torch.nn.Module = exported, x: torch.Tensor = x) -> None:
            with torch.no_grad():
                exported(x)

        def theirs(model: torch.nn.Module = model, x: torch.Tensor = x) -> None:
            with torch.no_grad():
                model(x)

        timing = time_alternating(ours, theirs, repeats=repeats, warmup=1, sync=sync)
        results.append(
            ratio_result(
                f"gcnn {name} forward",
                timing,
                cpu_note=device == "cpu",
                note=(
                    f"batch {BATCH} x 1x28x28, no_grad, eval mode; ours = export_model(), "
                    f"baseline = e2cnn module; max |logit difference| {difference:.1e}"
                ),
            )
        )
    return results
