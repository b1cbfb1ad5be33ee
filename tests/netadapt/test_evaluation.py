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


def _with_constant_holdout(prepared, out, value: int = 200):
    """A copy of the prepared folder `prepared` whose holdout images are all `value` (labels kept)."""
    import shutil

    import numpy as np

    from netadapt.data.datasets import RawSplit
    from netadapt.data.prepared import load_split, write_split

    shutil.copytree(prepared, out)
    holdout = load_split(prepared, "holdout")
    images = np.full(tuple(holdout.images[torch.arange(1)].shape[1:]), value, dtype=np.uint8)
    images = np.broadcast_to(images, (len(holdout), *images.shape)).copy()
    write_split(out, "holdout", RawSplit(images, holdout.labels.numpy()), np.arange(len(holdout)), [0])
    return out


def test_a_holdout_of_constant_images_leaves_candidates_and_the_monitors_bn_statistics_unchanged(
        tmp_path, monkeypatch):
    """Calibration never reads the holdout: the BN statistics of a scored candidate (and of the
    monitor's smallest sub-network) are the same whether the holdout is real or constant images, so
    the scores differ only by what is scored. Calibrating on the holdout (the old way) would differ."""
    from netadapt import evaluation
    from netadapt.arch import ModelSpec
    from netadapt.checkpoints import save_supernet
    from netadapt.config import SupernetConfig
    from netadapt.config.schema import DataConfig
    from netadapt.data.prepared import load_split, prepare_data
    from netadapt.models import build_supernet
    from netadapt.supernet import train_supernet
    from netadapt.training import accuracy
    from tests.presets import separable_data

    data = separable_data(tmp_path / "data", train=200, test=20)
    prepare_data(DataConfig(name="fashion-mnist", root=str(data)), 0, tmp_path / "real")
    _with_constant_holdout(tmp_path / "real", tmp_path / "constant")
    calibrated: dict[str, list[tuple[dict, float, nn.Module]]] = {}  # folder -> (state, score, model) scored
    folder = ""

    def spy(model, split, *args, **kwargs):  # the calibrated sub-network, as evaluation scores it
        score = accuracy(model, split, *args, **kwargs)
        calibrated.setdefault(folder, []).append(
            ({k: v.clone() for k, v in model.state_dict().items()}, score[1], model))
        return score

    monkeypatch.setattr(evaluation, "accuracy", spy)
    spec = ModelSpec("plain_cnn", (1, 28, 28), 10)
    supernets = {}
    for folder in ("real", "constant"):  # the monitor: one epoch, the same seed, either holdout
        torch.manual_seed(0)
        model = build_supernet(spec)
        train_supernet(model, load_split(tmp_path / folder, "train"), load_split(tmp_path / folder, "holdout"),
                       SupernetConfig(epochs=1, batch_size=32, group_size=8, device="cpu"), 0, torch.device("cpu"))
        supernets[folder] = model
        save_supernet(tmp_path / f"{folder}.pt", model, "digest")
        arch = model.space().smallest()
        evaluation.evaluate_candidate(arch.to_json(), supernet_path=str(tmp_path / f"{folder}.pt"),
                                      prepared_path=str(tmp_path / folder), bn_recalibration_batches=2,
                                      batch_size=16)
    assert all(torch.equal(v, supernets["constant"].state_dict()[k]) for k, v in supernets["real"].state_dict().items())
    real_holdout = load_split(tmp_path / "real", "holdout")
    assert len(calibrated["real"]) == len(calibrated["constant"]) == 2  # the monitor, then the candidate
    for (real_state, real_score, _), (constant_state, _, constant_model) in zip(
            calibrated["real"], calibrated["constant"]):
        assert real_state.keys() == constant_state.keys()
        assert any(k.endswith("running_mean") for k in real_state)
        assert all(torch.equal(real_state[k], constant_state[k]) for k in real_state), "BN saw the holdout"
        assert accuracy(constant_model, real_holdout, 16, torch.device("cpu"))[1] == real_score

    # the test can tell: re-estimated on the holdout itself, the statistics follow the constant images
    arch = supernets["real"].space().smallest()
    calibrated.clear()
    for folder in ("real", "constant"):
        evaluation.evaluate_subnet(supernets["real"], arch, load_split(tmp_path / folder, "holdout"),
                                   bn_recalibration_batches=2, batch_size=16)
    (real_state, *_), (constant_state, *_) = calibrated["real"][0], calibrated["constant"][0]
    assert not all(torch.equal(real_state[k], constant_state[k]) for k in real_state if "running" in k)
