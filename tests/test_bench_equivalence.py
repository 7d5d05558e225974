"""The benchmarks compare like with like: our PGD gives torchattacks' adversarial examples, and
the harness computes medians and ratios as documented."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import discover
from benchmarks._harness import Result, format_table, ratio_result, time_alternating
from trainables.attacks import pgd_linf
from trainables.models import build_model


@pytest.mark.parametrize(
    ("channels", "size", "eps", "step_size", "steps", "dyadic"),
    [
        (1, 28, 0.3, 0.03, 10, False),  # MNIST-like budget
        (3, 32, 8 / 255, 2 / 255, 10, False),  # CIFAR-10 budget
        # Pixels, eps and step on a 1/256 grid: both projections are exact, so even 40 steps
        # agree bit for bit (otherwise the two ways of projecting round differently by an ulp,
        # which can flip the sign of a near-zero gradient many steps later).
        (1, 28, 0.25, 1 / 64, 40, True),
    ],
)
def test_pgd_matches_torchattacks(channels, size, eps, step_size, steps, dyadic):
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(0)
    model = build_model("stdcnn", channels, 10, size, mean=(0.4,) * channels, std=(0.3,) * channels)
    model.train()  # both attacks switch to eval mode and back
    batch = 64  # a power of two: their mean loss and our summed loss scale the gradient exactly
    if dyadic:
        images = torch.randint(0, 256, (batch, channels, size, size)).float() / 256
    else:
        images = torch.rand(batch, channels, size, size)
    labels = torch.randint(0, 10, (batch,))

    ours = pgd_linf(model, images, labels, eps, step_size, steps, random_start=False)
    attack = torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=False)
    theirs = attack(images, labels)

    assert model.training
    assert (ours - images).abs().max() > step_size / 2  # the attack did move the images
    assert (ours - theirs).abs().max().item() < 1e-5


def test_harness_alternates_and_takes_medians():
    calls: list[str] = []
    ticks = iter(range(1000))

    def clock() -> float:  # a fake clock: every read advances one "second"
        return float(next(ticks))

    def ours() -> None:
        calls.append("ours")

    def baseline() -> None:
        calls.append("baseline")
        next(ticks)  # the baseline takes 3 ticks per call, ours 1 (plus the sync's)
        next(ticks)

    timing = time_alternating(ours, baseline, repeats=3, warmup=2, clock=clock)
    assert calls == ["ours", "baseline"] * 5
    assert timing.ours == (1.0, 1.0, 1.0)
    assert timing.baseline == (3.0, 3.0, 3.0)
    assert timing.ours_median == 1.0 and timing.baseline_median == 3.0
    assert timing.ratio == 3.0

    result = ratio_result("dummy", timing, min_ratio=2.0)
    assert result.ratio == 3.0 and result.ok is True and result.target == ">= 2x"
    assert ratio_result("dummy", timing, min_ratio=4.0).ok is False
    assert ratio_result("dummy", timing).ok is None
    table = format_table([result])
    assert "| dummy" in table and "3.00x" in table and "yes" in table


def test_result_ratio_and_medians_of_uneven_samples():
    from benchmarks._harness import Timing

    timing = Timing(ours=(0.5, 0.1, 0.2, 9.0), baseline=(0.8, 0.6, 0.4))
    assert timing.ours_median == pytest.approx(0.35)
    assert timing.baseline_median == pytest.approx(0.6)
    assert timing.ratio == pytest.approx(0.6 / 0.35)
    assert Result("m", ours=100.0, baseline=250.0, unit="MB").ratio == 2.5
    assert math.isinf(Result("z", ours=0.0, baseline=1.0).ratio)
    # a quantity where more is better (a hypervolume): the ratio still reads "above 1: ours wins"
    hv = Result("hv", ours=55.0, baseline=44.0, unit="% HV", higher_is_better=True)
    assert hv.ratio == pytest.approx(1.25) and hv.cells()[3] == "1.25x (ours/baseline)"


def test_every_bench_module_is_discovered():
    names = discover()
    assert names[:6] == ["spatial", "pgd", "epoch", "gcnn", "ray_overhead", "memory"]


def test_benchmark_json_has_no_infinity():
    import json
    import math

    from benchmarks.__main__ import _finite

    row = {"name": "never reached", "ours": math.inf, "ratio": 0.0, "baseline": math.nan}
    assert json.loads(json.dumps(_finite(row), allow_nan=False)) == {
        "name": "never reached",
        "ours": None,
        "ratio": 0.0,
        "baseline": None,
    }


def test_rung_correlations_are_spearman_and_undefined_when_a_rung_ties():
    from types import SimpleNamespace

    from benchmarks.bench_moasha_quickstart import rung_correlations

    # three trials' (spatial_acc, adv_acc) curves over 3 epochs; adv_acc ties at epochs 1 and 2
    curves = {
        0: [(0.1, 0.5), (0.2, 0.6), (0.9, 0.1)],
        1: [(0.3, 0.5), (0.4, 0.6), (0.5, 0.2)],
        2: [(0.2, 0.5), (0.1, 0.6), (0.1, 0.3)],
    }
    got = rung_correlations([SimpleNamespace(curves=curves)], [1, 2])
    # ranks at epoch 1 (1, 3, 2) and 2 (2, 3, 1) against the final ranks (3, 2, 1)
    assert got["spatial_acc"] == pytest.approx([-0.5, 0.5])
    assert all(math.isnan(value) for value in got["adv_acc"])


def test_benchmark_json_has_no_infinity_at_any_depth():
    import json

    from benchmarks.__main__ import _finite

    row = {"ratio": math.inf, "extra": {"per_seed_fraction": [0.5, math.inf], "n": 3}}
    assert _finite(row) == {"ratio": None, "extra": {"per_seed_fraction": [0.5, None], "n": 3}}
    json.dumps(_finite(row), allow_nan=False)


def test_benchmark_json_into_a_missing_directory_is_refused_before_running(capsys):
    from benchmarks.__main__ import main

    assert main(["--only", "spatial", "--json", "/nonexistent-dir/x.json"]) == 2
    assert "no such directory" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["bench_moasha", "bench_moasha_quickstart"])
def test_moasha_benchmarks_refuse_unknown_options_instead_of_running(module, monkeypatch):
    import importlib

    monkeypatch.setattr("sys.argv", [module, "--qiuck"])
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"benchmarks.{module}").main()
    assert exit_info.value.code == 2
