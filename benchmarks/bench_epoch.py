"""``epoch``: one epoch of PGD adversarial training on rotated inputs, ours against the authors'.

Both train ``stdcnn`` on the same synthetic digits, batch 128, with a random rotation in
``[-30, 30]`` degrees and then PGD at eps 0.3 (5 steps of 0.08, random start), SGD with momentum.

Ours: :func:`trainables.training.train_epoch` (``theta_deg=30``, ``eps=0.3``, method ``pgd``):
the uint8 dataset on the training device, batched by index, rotated by one ``grid_sample`` per
batch, attacked by ``pgd_linf`` (gradients with respect to the input only).

Theirs, re-created from the authors' scripts (CIFAR-10 PGD-AT code of the usual shape): a torch
``Dataset`` over the same images as PIL images with ``RandomRotation(30)`` + ``ToTensor()`` per
sample in a shuffling ``DataLoader``, each batch moved to the device, then a standalone PGD loop
(``model.eval()``, ``loss.backward()`` on the input, which also fills the weights' ``.grad``,
``model.train()``), then ``optimizer.zero_grad()``, the loss on the adversarial batch and an SGD
step. On the CPU the loader runs in the main process (``num_workers=0``: on 2 cores, workers only
compete with the training for the same cores); on CUDA with ``num_workers=2`` and pinned memory,
as their scripts do.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from benchmarks._harness import Result, device_sync, ratio_result, time_alternating
from benchmarks.bench_spatial import PILRotationDataset

THETA = 30.0
EPS = 0.3
STEPS = 5
STEP_SIZE = 0.08  # 0.01 x 40 / 5: MNIST's PGD travel in 5 steps
BATCH = 128
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4
CUDA_TARGET = 3.0


def authors_pgd(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int
) -> torch.Tensor:
    """The PGD of common PGD-AT scripts: eval mode, random start, ``loss.backward()`` on the
    input (the weights' gradients are computed too and zeroed by the caller), train mode."""
    model.eval()
    x_adv = x.detach() + torch.empty_like(x).uniform_(-eps, eps)
    x_adv = torch.clamp(x_adv, 0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_()
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()
        x_adv = x_adv.detach() + alpha * x_adv.grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()
    return x_adv.detach()


def authors_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: torch.utils.data.DataLoader,
    device: str,
) -> float:
    """One epoch of the authors' PGD-AT loop; returns the mean training loss."""
    model.train()
    total, seen = 0.0, 0
    for inputs, targets in loader:
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        adv = authors_pgd(model, inputs, targets, EPS, STEP_SIZE, STEPS)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(adv), targets)
        loss.backward()
        optimizer.step()
        total += loss.item() * targets.shape[0]
        seen += targets.shape[0]
    return total / max(seen, 1)


def _sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def _our_epoch(model, optimizer, images, labels, generator, *, amp: bool = False):
    from trainables.training import AttackSettings, train_epoch

    train_epoch(
        model,
        optimizer,
        images,
        labels,
        theta_deg=THETA,
        translate_px=0.0,
        eps=EPS,
        method="pgd",
        attack=AttackSettings(steps=STEPS, step_size=STEP_SIZE),
        batch_size=BATCH,
        generator=generator,
        amp=amp,
    )


def run(quick: bool, device: str) -> list[Result]:
    from trainables.acceleration import accelerate, autotune_convolutions
    from trainables.datasets import load_dataset
    from trainables.models import build_model

    n = 256 if quick else 2000
    repeats = 3 if quick else 5
    data = load_dataset("synthetic-digits", n_train=n, n_test=10, cache=False)
    info = data.info
    torch.manual_seed(0)
    model = build_model(
        "stdcnn", info.channels, info.num_classes, info.image_size, mean=info.mean, std=info.std
    )
    on_gpu = device.startswith("cuda")
    autotune_convolutions(torch.device(device))  # as Trial does
    # ours as a Trial builds it (channels_last by default); theirs as their scripts do
    ours_model = accelerate(copy.deepcopy(model), torch.device(device))
    their_model = copy.deepcopy(model).to(device)
    ours_opt, their_opt = _sgd(ours_model), _sgd(their_model)

    images, labels = data.train_images.to(device), data.train_labels.to(device)
    generator = torch.Generator(device=device).manual_seed(0)

    def ours() -> None:
        _our_epoch(ours_model, ours_opt, images, labels, generator)

    num_workers = 2 if on_gpu else 0
    loader = torch.utils.data.DataLoader(
        PILRotationDataset(data.train_images.numpy(), data.train_labels.numpy(), THETA),
        batch_size=BATCH,
        shuffle=True,
        num_workers=num_workers,
        pin_memory=on_gpu,
        persistent_workers=num_workers > 0,
    )

    def theirs() -> None:
        authors_epoch(their_model, their_opt, loader, device)

    sync = device_sync(device)
    timing = time_alternating(ours, theirs, repeats=repeats, warmup=1, sync=sync)
    target = CUDA_TARGET if on_gpu else None
    note = (
        f"stdcnn, {n} synthetic digits, batch {BATCH}, rotation +-{THETA:g} deg then PGD eps "
        f"{EPS} ({STEPS} x {STEP_SIZE:g}), SGD; ours channels_last (the Trial default); theirs: "
        f"PIL RandomRotation + ToTensor in a DataLoader (num_workers={num_workers}), PGD with "
        "loss.backward() on the input"
    )
    if not on_gpu:
        note += f"; the {CUDA_TARGET:g}x target is for --device cuda"
    results = [
        ratio_result(
            f"epoch pgd-at ({device})", timing, min_ratio=target, note=note, cpu_note=not on_gpu
        )
    ]
    results += _fast_path_rows(model, images, labels, device, quick=quick, repeats=repeats)
    return results


def _fast_path_rows(model, images, labels, device: str, *, quick: bool, repeats: int):
    """Our epoch with each fast-path option against our epoch without it (same process)."""
    from trainables.acceleration import accelerate

    on_gpu = device.startswith("cuda")
    nhwc = {"channels_last": True}
    # (row, options with, options without, bf16 autocast with); channels_last: bench_layout
    variants = []
    if on_gpu:
        variants.append(("bf16 autocast vs fp32", nhwc, nhwc, True))
    if on_gpu or not quick:  # a compile takes 25-40 s on the CPU
        variants.append(("torch.compile vs eager", {**nhwc, "compile": True}, nhwc, False))

    def epoch_of(options: dict, amp: bool):
        net = accelerate(copy.deepcopy(model), torch.device(device), **options)
        optimizer = _sgd(net)
        generator = torch.Generator(device=device).manual_seed(0)
        return lambda: _our_epoch(net, optimizer, images, labels, generator, amp=amp)

    rows = []
    for label, with_options, without_options, amp in variants:
        fast, plain = epoch_of(with_options, amp), epoch_of(without_options, False)
        start = time.perf_counter()
        fast()  # the first epoch compiles, when asked to
        first_epoch = time.perf_counter() - start
        timing = time_alternating(fast, plain, repeats=repeats, warmup=1, sync=device_sync(device))
        note = (
            f"ours with the option against ours without, same epoch as above; its first "
            f"epoch (with torch.compile: the compile) took {first_epoch:.1f} s"
        )
        name = f"epoch fast path ({device}): {label}"
        rows.append(ratio_result(name, timing, note=note, cpu_note=not on_gpu))
    return rows
