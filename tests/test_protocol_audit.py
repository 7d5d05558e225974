"""Protocol fidelity: what the tool computes is what the field means by the same words.

Attacks are compared with torchattacks 3.3.0 where it has the same attack (PGD with random
start, FGSM, TRADES' KL-PGD), the training step with the reference TRADES loss, the CIFAR-10
augmentation with torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``, and
the shipped CIFAR-10 job and the ``cusp`` preset with the paper's numbers (PAPER.md).
"""

from __future__ import annotations

import warnings

import optuna
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

import trainables.training as training
from search_spaces import make_space, paper_cusp_params
from trainables.attacks import fgsm, pgd_linf, trades_attack
from trainables.config import TrialConfig
from trainables.curriculum import cusp_curriculum
from trainables.datasets import CIFAR10_INFO, ImageDataset
from trainables.evaluation import EvalSettings, evaluate
from trainables.models import build_model
from trainables.spatial import random_crop_flip, random_spatial
from trainables.training import AttackSettings, Method, batch_loss
from trainables.trial import Trial
from tune_jobs.spec import find_job, load_job


def _bn_model() -> nn.Module:
    """A stdcnn for 28x28 grey images (it has batch norm), with non-trivial running statistics."""
    torch.manual_seed(0)
    model = build_model("stdcnn", 1, 10, 28, mean=(0.4,), std=(0.3,))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 1, 28, 28))
    return model


def _dyadic_batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels on a 1/256 grid: with dyadic eps and step both ways of projecting are exact."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=generator).float() / 256
    return images, torch.randint(0, 10, (n,), generator=generator)


def _rate(hits: torch.Tensor) -> float:
    """A count over the batch, as ``evaluate`` reports it."""
    return hits.sum().item() / hits.shape[0]


def _tiny_cifar(n: int = 24) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)
    labels = torch.arange(n) % 10
    return ImageDataset(CIFAR10_INFO, images, labels, images.clone(), labels.clone())


# ---------------------------------------------------------------------------------------------
# Attacks against torchattacks


def test_pgd_with_random_start_matches_torchattacks():
    torchattacks = pytest.importorskip("torchattacks")
    model = _bn_model()
    x, y = _dyadic_batch()
    torch.manual_seed(7)  # torchattacks draws its start from the global generator
    theirs = torchattacks.PGD(model, eps=0.25, alpha=1 / 64, steps=20, random_start=True)(x, y)
    ours = pgd_linf(model, x, y, 0.25, 1 / 64, 20, generator=torch.Generator().manual_seed(7))
    assert model.training  # both attack in eval mode and restore the mode
    assert (ours - x).abs().max() == 0.25  # it reached the edge of the ball
    assert torch.equal(ours, theirs)


def test_fgsm_matches_torchattacks():
    torchattacks = pytest.importorskip("torchattacks")
    model = _bn_model()
    x, y = _dyadic_batch()
    assert torch.equal(fgsm(model, x, y, 0.25), torchattacks.FGSM(model, eps=0.25)(x, y))


def test_trades_attack_matches_torchattacks_tpgd():
    torchattacks = pytest.importorskip("torchattacks")
    model = _bn_model()
    x, y = _dyadic_batch()
    torch.manual_seed(3)  # both start at x + 0.001 * N(0, 1) from the same draws
    theirs = torchattacks.TPGD(model, eps=0.25, alpha=1 / 64, steps=10)(x, y)
    ours = trades_attack(model, x, 0.25, 1 / 64, 10, generator=torch.Generator().manual_seed(3))
    assert (ours - x).abs().max() > 0.1
    assert torch.equal(ours, theirs)


# ---------------------------------------------------------------------------------------------
# Training-time attacks and batch norm


def test_pgd_training_step_updates_batch_norm_once_on_the_adversarial_batch():
    model = _bn_model()
    x, y = _dyadic_batch()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.num_batches_tracked.item()
    batch_loss(
        model,
        x,
        y,
        method=Method.PGD,
        eps=0.25,
        attack=AttackSettings(3, 0.1),
        generator=torch.Generator().manual_seed(1),
    )
    assert bn.num_batches_tracked.item() == before + 1  # the attack's passes ran in eval mode


def test_trades_loss_is_zhang_et_al_with_separate_clean_and_adversarial_batches():
    """TRADES: CE(f(x), y) + beta * KL(f(x) || f(x_adv)) / N, clean and adversarial examples
    through the model (in train mode) as two batches, as the TRADES code does. One concatenated
    batch normalised both with shared batch-norm statistics (loss 2.83 instead of 2.75 here)."""
    model = _bn_model()
    x, y = _dyadic_batch()
    attack = AttackSettings(3, 0.1, trades_beta=6.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss, logits = batch_loss(
        model,
        x,
        y,
        method=Method.TRADES,
        eps=0.25,
        attack=attack,
        generator=torch.Generator().manual_seed(2),
    )

    model.load_state_dict(state)
    x_adv = trades_attack(model, x, 0.25, 0.1, 3, generator=torch.Generator().manual_seed(2))
    clean, adversarial = model(x), model(x_adv)
    kl = nn.KLDivLoss(reduction="sum")(F.log_softmax(adversarial, 1), F.softmax(clean, 1))
    expected = F.cross_entropy(clean, y) + 6.0 * kl / x.shape[0]
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, clean)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 standard augmentation: random crop (pad 4) and horizontal flip


def test_random_crop_flip_is_torchvisions_crop_with_padding_then_flip():
    images = torch.rand(400, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = random_crop_flip(images, 4, True, torch.Generator().manual_seed(1))
    tops, lefts, flips = set(), set(), 0
    for image, got in zip(images, out, strict=True):
        padded = TF.pad(image, [4])  # RandomCrop(32, padding=4): zero fill, then a 32x32 window
        match = [
            (top, left, flip)
            for top in range(9)
            for left in range(9)
            for flip in (False, True)
            if torch.equal(got, _maybe_hflip(TF.crop(padded, top, left, 32, 32), flip))
        ]
        assert len(match) == 1  # exactly one window of the padded image, maybe mirrored
        (top, left, flip), *_ = match
        tops.add(top)
        lefts.add(left)
        flips += flip
    assert tops == lefts == set(range(9))  # every offset occurs, along each axis
    assert 150 < flips < 250  # mirrored with probability 1/2


def _maybe_hflip(image: torch.Tensor, flip: bool) -> torch.Tensor:
    return TF.hflip(image) if flip else image


def test_random_crop_flip_off_returns_the_input():
    images = torch.rand(4, 1, 28, 28)
    assert random_crop_flip(images, 0, False) is images


@pytest.mark.parametrize(
    ("dataset", "overrides", "expected"),
    [
        ("cifar10", {}, (4, True)),
        ("cifar10", {"augment": False}, (0, False)),
        ("synthetic-digits", {}, (0, False)),  # MNIST convention (Madry et al.): none
    ],
)
def test_training_applies_the_datasets_standard_augmentation(
    monkeypatch, digits, dataset, overrides, expected
):
    seen: list[tuple[int, bool]] = []
    original = training.random_crop_flip

    def spy(images, padding, flip, generator=None):
        seen.append((padding, flip))
        return original(images, padding, flip, generator)

    monkeypatch.setattr(training, "random_crop_flip", spy)
    data = _tiny_cifar() if dataset == "cifar10" else digits
    config = TrialConfig.from_dict(
        {
            "dataset": dataset,
            "model": "stdcnn",
            "model_width": 0.25,
            "train_size": 24,
            "test_size": 16,
            "epochs": 2,
            "batch_size": 12,
            "method": "standard",
            "eval_subset": 16,
            "eval_pgd_steps": 1,
            "final_profiles": False,
            "device": "cpu",
            **overrides,
        }
    )
    Trial(config, data).run_epoch()
    assert seen == [expected, expected]  # once per batch


# ---------------------------------------------------------------------------------------------
# The paper's CIFAR-10 CuSP settings


def test_a_120_epoch_cusp_trial_follows_the_paper_table_and_lr_drops():
    config = TrialConfig.from_dict(
        {
            "dataset": "cifar10",
            "model": "stdcnn",
            "model_width": 0.25,
            "epochs": 120,
            "lr": 0.1,
            "curriculum": "cusp",
            "device": "cpu",
        }
    )
    trial = Trial(config, _tiny_cifar())
    schedule = {}
    for epoch in range(1, 121):  # what run_epoch reads and does, without the training
        stage = trial.curriculum.at(epoch)
        schedule[epoch] = (
            stage.theta_deg,
            round(stage.eps * 255, 9),
            trial.optimizer.param_groups[0]["lr"],
        )
        trial.scheduler.step()
    expected = {
        1: (120.0, 2, 0.1),
        74: (120.0, 2, 0.1),
        75: (150.0, 4, 0.01),
        89: (150.0, 4, 0.01),
        90: (180.0, 8, 0.001),
        99: (180.0, 8, 0.001),
        100: (180.0, 8, 0.0001),
        120: (180.0, 8, 0.0001),
    }
    for epoch, (theta, eps_255, lr) in expected.items():
        assert schedule[epoch][:2] == (theta, eps_255), epoch
        assert schedule[epoch][2] == pytest.approx(lr), epoch
    assert trial.attack.steps == 10 and trial.attack.step_size == 2 / 255
    assert trial.eval.eps_eval == 8 / 255 and trial.eval.pgd_steps == 10
    assert config.batch_size == 128 and config.momentum == 0.9 and config.weight_decay == 5e-4


def test_the_papers_gcnn_trains_on_the_cusp_curriculum_and_resumes(tmp_path):
    """gcnn-resnet18 (p4m ResNet18) through the whole trial: PGD-AT on rotated images, the
    evaluation (exported model), a checkpoint and a restore that gives the same model."""
    config = TrialConfig.from_dict(
        {
            "dataset": "cifar10",
            "model": "gcnn-resnet18",
            "model_width": 0.125,
            "epochs": 2,
            "batch_size": 12,
            "method": "pgd",
            "curriculum": "cusp",
            "eval_subset": 8,
            "eval_pgd_steps": 2,
            "final_profiles": False,
            "device": "cpu",
        }
    )
    data = _tiny_cifar()
    trial = Trial(config, data)
    first = trial.run_epoch()
    assert first["theta"] == 120.0 and first["eps"] == pytest.approx(2 / 255)
    for metric in ("clean_acc", "spatial_acc", "adv_acc", "combined_acc", "invariance_rate"):
        assert 0.0 <= first[metric] <= 1.0, metric
    trial.save(tmp_path)
    restored = Trial(config, data)
    restored.restore(tmp_path)
    x = data.test_images[:4].float() / 255
    for model in (trial.model, restored.model):
        model.eval()
    with torch.no_grad():
        assert torch.equal(restored.model(x), trial.model(x))
        # Trained weights keep the logits invariant to the grid's rotations.
        assert torch.allclose(trial.model(torch.rot90(x, 1, (2, 3))), trial.model(x), atol=1e-4)
    assert restored.run_epoch()["epoch"] == 2


def test_cifar10_cusp_job_uses_exact_budgets_and_contains_the_paper_point():
    job = load_job(find_job("cifar10-cusp"))
    assert job.trial["eps_eval"] == 8 / 255
    assert job.trial["eval_pgd_step_size"] == job.trial["train_pgd_step_size"] == 2 / 255
    space = make_space(job.search.preset, job.search_bounds(), job.epochs)
    paper = {**paper_cusp_params(8 / 255), "model": "vgg16"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns when a value is outside the bounds
        sampled = space(optuna.trial.FixedTrial(paper))
    curriculum = TrialConfig.from_dict({**job.trial, **sampled}).build_curriculum()
    assert curriculum.stages() == cusp_curriculum(120, 8 / 255).stages()
    assert curriculum.lr_milestones == (75, 90, 100)


@pytest.mark.parametrize("name", ["mnist-cusp", "mnist-tradeoff-eps", "mnist-tradeoff-rotation"])
def test_mnist_jobs_train_with_madrys_40_steps_and_evaluate_with_100(name):
    # 40 steps of 0.01 read adv_acc about 5 points higher than 100 on a PGD-trained model
    trial = load_job(find_job(name)).trial_config()
    assert trial.get("train_pgd_steps", 40) == 40 and trial["eval_pgd_steps"] == 100
    assert trial["eval_pgd_step_size"] == 0.01


# ---------------------------------------------------------------------------------------------
# Metric definitions (DESIGN.md)


def test_metrics_are_the_documented_definitions(trained_model, digits):
    images, labels = digits.test_images[:100], digits.test_labels[:100]
    settings = EvalSettings(
        theta_eval=60.0, translate_eval=0.1, eps_eval=0.1, pgd_steps=3, pgd_step_size=0.05
    )
    metrics = evaluate(trained_model, images, labels, settings)

    x = images.float() / 255
    seed = settings.seed
    with torch.no_grad():
        clean = trained_model(x).argmax(1)
    x_t = random_spatial(x, 60.0, 0.1 * 28, torch.Generator().manual_seed(seed))
    x_adv = pgd_linf(
        trained_model, x, labels, 0.1, 0.05, 3, generator=torch.Generator().manual_seed(seed + 1)
    )
    x_comb = pgd_linf(
        trained_model, x_t, labels, 0.1, 0.05, 3, generator=torch.Generator().manual_seed(seed + 2)
    )
    with torch.no_grad():
        spatial = trained_model(x_t).argmax(1)
        adv = trained_model(x_adv).argmax(1)
        combined = trained_model(x_comb).argmax(1)
    assert metrics["clean_acc"] == _rate(clean == labels)
    assert metrics["spatial_acc"] == _rate(spatial == labels)
    assert metrics["adv_acc"] == _rate(adv == labels)
    assert metrics["combined_acc"] == _rate(combined == labels)  # A(T(x))
    assert metrics["invariance_rate"] == _rate(spatial == clean)  # f(Tx) = f(x)
    assert metrics["combined_acc"] < metrics["spatial_acc"]
