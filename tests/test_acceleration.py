from __future__ import annotations

import pytest
import torch

from trainables.acceleration import accelerate, autotune_convolutions
from trainables.config import TrialConfig
from trainables.errors import UserError
from trainables.models import build_model
from trainables.trial import Trial

CPU = torch.device("cpu")
TINY = dict(
    model="stdcnn",
    model_width=0.25,
    train_size=128,
    test_size=64,
    epochs=1,
    batch_size=64,
    train_pgd_steps=1,
    eval_pgd_steps=1,
    eval_subset=64,
    final_profiles=False,
    eps_max=0.1,
    eps_schedule="constant",
)


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 4]


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, 1, 10, 28, mean=(0.5,), std=(0.25,)).eval()


@pytest.mark.parametrize("name", ["stdcnn", "resnet18", "gcnn-c4"])
def test_channels_last_gives_the_same_logits(name):
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    plain = _model(name)
    fast = accelerate(_model(name), CPU, channels_last=True)
    weights = _conv_weights(fast)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    with torch.no_grad():
        assert torch.allclose(fast(images), plain(images), atol=1e-5, rtol=0)


def test_trial_lays_out_its_model_as_its_config_says(digits, tmp_path):
    fast = Trial(TrialConfig.from_dict(TINY), digits, CPU)
    weights = _conv_weights(fast.model)
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    plain = Trial(TrialConfig.from_dict({**TINY, "channels_last": False}), digits, CPU)
    assert all(w.is_contiguous() for w in _conv_weights(plain.model))
    gcnn = TrialConfig.from_dict({**TINY, "model": "gcnn-c4"})
    assert gcnn.channels_last is None and not gcnn.uses_channels_last  # the model's choice

    # checkpoints do not depend on the layout: one written NHWC loads into an NCHW trial
    fast.run_epoch()
    fast.save(tmp_path)
    plain.restore(tmp_path)
    for a, b in zip(
        fast.model.state_dict().values(), plain.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert all(w.is_contiguous() for w in _conv_weights(plain.model))


def test_compiled_trial_trains_and_checkpoints_with_plain_keys(digits, tmp_path):
    config = TrialConfig.from_dict({**TINY, "compile": True})
    trial = Trial(config, digits, CPU)
    assert trial.model._compiled_call_impl is not None  # nn.Module.compile ran
    metrics = trial.run_epoch()
    assert metrics["final"] and 0 <= metrics["adv_acc"] <= 1
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # dynamo traced the model
    trial.save(tmp_path)
    eager = Trial(TrialConfig.from_dict(TINY), digits, CPU)
    eager.restore(tmp_path)  # same keys: no "_orig_mod." prefix
    assert eager.epoch == 1


def test_cudnn_autotuning_only_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    autotune_convolutions(CPU)
    assert torch.backends.cudnn.benchmark is False
    autotune_convolutions(torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is True


def test_job_spec_sets_the_fast_path_for_every_trial():
    from tune_jobs.spec import load_job

    default = TrialConfig.from_dict(load_job("quickstart").trial)
    assert default.uses_channels_last and default.compile is False  # quickstart: stdcnn
    job = load_job(
        "quickstart",
        {"training.compile": True, "training.channels_last": False, "training.amp": True},
    )
    assert (job.trial["compile"], job.trial["channels_last"], job.trial["amp"]) == (
        True,
        False,
        True,
    )
    with pytest.raises(UserError, match="compile must be bool"):
        load_job("quickstart", {"training.compile": "yes"})
