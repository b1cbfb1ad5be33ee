"""BN recalibration of extracted sub-networks: what statistics it ends with."""

from __future__ import annotations

import torch
from torch import nn

from netadapt.data import Split
from netadapt.evaluation import recalibrate_bn
from netadapt.training import to_input


def test_recalibration_weighs_each_sample_equally_with_a_short_last_batch():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (10, 2, 3, 3), dtype=torch.uint8)
    split = Split(images, torch.zeros(10, dtype=torch.long))
    model = nn.Sequential(nn.BatchNorm2d(2))
    recalibrate_bn(model, split, num_batches=3, batch_size=4, device=torch.device("cpu"))  # 4 + 4 + 2
    expected = to_input(images).mean(dim=(0, 2, 3))
    assert torch.allclose(model[0].running_mean, expected, atol=1e-5)
    assert model[0].momentum == 0.1 and not model.training


def test_recalibration_on_a_class_sorted_split_sees_every_class():
    labels = torch.arange(3).repeat_interleave(20)
    images = (labels * 100).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    model = nn.Sequential(nn.BatchNorm2d(1))
    recalibrate_bn(model, Split(images, labels), num_batches=1, batch_size=6, device=torch.device("cpu"))
    assert torch.allclose(model[0].running_mean, to_input(images).mean(dim=(0, 2, 3)), atol=1e-5)


def test_candidates_re_estimate_bn_on_train_and_only_score_on_holdout(tmp_path, monkeypatch):
    """The holdout ranks the candidates: statistics estimated on it would have seen the batches that
    score them."""
    from netadapt import evaluation
    from netadapt.arch import ModelSpec
    from netadapt.checkpoints import save_supernet
    from netadapt.config.schema import DataConfig
    from netadapt.data.prepared import load_split, prepare_data
    from netadapt.models import build_supernet
    from tests.presets import separable_data

    data = separable_data(tmp_path / "data", train=80, test=20)
    prepare_data(DataConfig(name="fashion-mnist", root=str(data)), 0, tmp_path / "prepared")
    model = build_supernet(ModelSpec("plain_cnn", (1, 28, 28), 10))
    save_supernet(tmp_path / "s.pt", model, "digest")
    seen = []
    real = evaluation.recalibrate_bn
    monkeypatch.setattr(evaluation, "recalibrate_bn", lambda m, split, *a: (seen.append(split), real(m, split, *a)))
    arch = model.space().smallest()
    evaluation.evaluate_candidate(arch.to_json(), supernet_path=str(tmp_path / "s.pt"),
                                  prepared_path=str(tmp_path / "prepared"), bn_recalibration_batches=1, batch_size=16)
    train, holdout = (load_split(tmp_path / "prepared", n) for n in ("train", "holdout"))
    assert len(holdout.labels) != len(train.labels)
    assert len(seen) == 1 and torch.equal(seen[0].labels, train.labels)
