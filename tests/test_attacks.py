from __future__ import annotations

import pytest
import torch
from torch import nn

from trainables.attacks import (
    combined_attack,
    fgsm,
    pgd_linf,
    spatial_attack,
    trades_attack,
)
from trainables.spatial import affine_batch, random_spatial, rotation_grid


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_pgd_stays_in_eps_ball_and_unit_box(trained_model, test_batch):
    x, y = test_batch
    adv = pgd_linf(trained_model, x, y, eps=0.3, step_size=0.05, steps=5)
    assert (adv - x).abs().max() <= 0.3 + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert not adv.requires_grad


def test_pgd_lowers_accuracy_of_trained_model(trained_model, test_batch):
    x, y = test_batch
    clean = _accuracy(trained_model, x, y)
    adv = _accuracy(trained_model, pgd_linf(trained_model, x, y, 0.3, 0.05, 10), y)
    assert clean > 0.8
    assert adv < clean - 0.3


def test_stronger_attack_is_not_weaker(trained_model, test_batch):
    x, y = test_batch
    weak = _accuracy(trained_model, pgd_linf(trained_model, x, y, 0.05, 0.01, 10), y)
    strong = _accuracy(trained_model, pgd_linf(trained_model, x, y, 0.2, 0.04, 10), y)
    assert strong <= weak


def test_eps_zero_returns_input(trained_model, test_batch):
    x, y = test_batch
    assert torch.equal(pgd_linf(trained_model, x, y, 0.0, 0.01, 10), x)
    assert torch.equal(fgsm(trained_model, x, y, 0.0), x)


def test_attack_restores_mode_and_leaves_parameter_grads_alone(trained_model, test_batch):
    x, y = test_batch
    trained_model.zero_grad(set_to_none=True)
    trained_model.train()
    try:
        pgd_linf(trained_model, x, y, 0.1, 0.02, 2)
        assert trained_model.training
        assert all(p.grad is None for p in trained_model.parameters())
    finally:
        trained_model.eval()
    pgd_linf(trained_model, x, y, 0.1, 0.02, 2)
    assert not trained_model.training


def test_attack_runs_in_eval_mode():
    seen_modes: list[bool] = []

    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x):
            seen_modes.append(self.training)
            return self.linear(x.flatten(1))

    model = Spy().train()
    pgd_linf(model, torch.rand(5, 1, 2, 2), torch.zeros(5, dtype=torch.long), 0.1, 0.02, 3)
    assert seen_modes == [False] * 3 and model.training


def test_random_start_reproducible_with_generator(trained_model, test_batch):
    x, y = test_batch
    a = pgd_linf(trained_model, x, y, 0.1, 0.02, 2, generator=torch.Generator().manual_seed(3))
    b = pgd_linf(trained_model, x, y, 0.1, 0.02, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_fgsm_moves_every_unclipped_pixel_by_eps(trained_model, test_batch):
    x, y = test_batch
    adv = fgsm(trained_model, x, y, 0.1)
    delta = (adv - x).abs()
    interior = (x > 0.1) & (x < 0.9)
    moved = delta[interior]
    # Pixels with zero gradient do not move; every pixel that moved moved by exactly eps.
    assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], 0.1), atol=1e-6)
    assert (moved > 0).float().mean() > 0.5


def test_spatial_grid_attack_fools_whenever_some_grid_point_fools(trained_model, test_batch):
    x, y = test_batch[0][:40], test_batch[1][:40]
    grid = (7, 3, 3)
    worst = spatial_attack(trained_model, x, y, 60.0, 3.0, grid=grid)
    fooled_by_attack = torch.zeros(40, dtype=torch.bool)
    with torch.no_grad():
        fooled_by_attack = trained_model(worst).argmax(1) != y
        fooled_by_any = torch.zeros(40, dtype=torch.bool)
        for angle in rotation_grid(60.0, 7):
            for tx in rotation_grid(3.0, 3):
                for ty in rotation_grid(3.0, 3):
                    shifted = affine_batch(
                        x, torch.full((40,), angle), torch.tensor([[tx, ty]]).expand(40, 2)
                    )
                    fooled_by_any |= trained_model(shifted).argmax(1) != y
    assert torch.equal(fooled_by_attack, fooled_by_any)
    assert fooled_by_any.any()


def test_worst_of_k_is_at_least_as_strong_as_one_random_transform(trained_model, test_batch):
    x, y = test_batch
    random_acc = _accuracy(trained_model, random_spatial(x, 90.0, 0.0, torch.Generator()), y)
    worst_acc = _accuracy(
        trained_model,
        spatial_attack(trained_model, x, y, 90.0, 0.0, tries=10, generator=torch.Generator()),
        y,
    )
    assert worst_acc < random_acc


def test_combined_attack_is_pgd_on_top_of_the_random_transform(trained_model, test_batch):
    x, y = test_batch
    g = torch.Generator().manual_seed(5)
    expected = pgd_linf(
        trained_model, random_spatial(x, 45.0, 2.0, g), y, 0.1, 0.02, 3, generator=g
    )
    got = combined_attack(
        trained_model,
        x,
        y,
        max_angle_deg=45.0,
        max_translate_px=2.0,
        eps=0.1,
        step_size=0.02,
        steps=3,
        generator=torch.Generator().manual_seed(5),
    )
    assert torch.equal(got, expected)


def test_trades_attack_stays_in_ball(trained_model, test_batch):
    x, _ = test_batch
    adv = trades_attack(trained_model, x, 0.2, 0.05, 3, generator=torch.Generator())
    assert (adv - x).abs().max() <= 0.2 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_negative_budgets_are_rejected(trained_model, test_batch):
    x, y = test_batch
    with pytest.raises(ValueError):
        pgd_linf(trained_model, x, y, -0.1, 0.01, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": (0, 1, 1)}, "at least 1 point per axis"),  # returned its input unchanged
        ({"max_angle_deg": -30.0, "tries": 2}, "spatial ranges must be non-negative"),
    ],
)
def test_spatial_attack_refuses_settings_that_would_transform_nothing(kwargs, message):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    x, y = torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)
    args = {"max_angle_deg": 30.0, "max_translate_px": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        spatial_attack(model, x, y, **args)
