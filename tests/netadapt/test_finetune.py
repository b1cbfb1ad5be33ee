"""The slim network: trained further (`train_network`), exported to ONNX with a dynamic batch axis,
scoring like PyTorch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from netadapt.arch import Architecture, ModelSpec
from netadapt.config import FinetuneConfig
from netadapt.finetune import export_onnx, initial_network, train_network
from netadapt.models import build_supernet, extract
from netadapt.resources.backends import onnx_bytes

SPEC = ModelSpec("plain_cnn", (1, 8, 8), 3)


def tiny_network(seed: int = 0) -> tuple[nn.Module, Architecture]:
    """A narrowed plain CNN with seeded weights and non-trivial batch-norm statistics (eval mode)."""
    torch.manual_seed(seed)
    supernet = build_supernet(SPEC)
    space = supernet.space()
    arch = space.with_widths({d.name: d.choices()[len(d.choices()) // 2] for d in space.dims})
    assert arch != space
    model = extract(supernet, arch)
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return model.eval(), arch


def seeded_batch(n: int = 64, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SPEC.input_shape)).astype(np.float32)


def batch_dim(value_info) -> onnx.TensorShapeProto.Dimension:
    return value_info.type.tensor_type.shape.dim[0]


def test_exported_onnx_scores_a_batch_of_64_like_pytorch(tmp_path: Path):
    import onnxruntime as ort

    model, _ = tiny_network()
    path = tmp_path / "model.onnx"
    export_onnx(model, SPEC.input_shape, path)

    x = seeded_batch()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape == (64, SPEC.num_classes)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)

    graph = onnx.load(str(path)).graph
    for value in (graph.input[0], graph.output[0]):
        dim = batch_dim(value)
        assert dim.dim_param and not dim.HasField("dim_value"), f"{value.name}: batch axis is fixed ({dim})"


def test_onnx_bytes_keeps_a_fixed_batch_unless_asked():
    """The latency profiler's unit graphs keep the example's batch; export asks for a dynamic one."""
    (model, _), inputs = tiny_network(), (torch.zeros(1, *SPEC.input_shape),)
    fixed = onnx.load_from_string(onnx_bytes(model, inputs)).graph
    assert batch_dim(fixed.input[0]).dim_value == 1 and batch_dim(fixed.output[0]).dim_value == 1
    dynamic = onnx.load_from_string(onnx_bytes(model, inputs, dynamic_batch=True)).graph
    assert batch_dim(dynamic.input[0]).dim_param and batch_dim(dynamic.output[0]).dim_param


def test_train_network_learns_and_resumes_where_it_stopped(tmp_path: Path, monkeypatch):
    """Per epoch a loss and a holdout accuracy; on a separable task it learns far above chance
    (0.25), and a run stopped after an epoch goes on to the uninterrupted run's weights and curve."""
    from netadapt import finetune
    from netadapt.resume import Progress
    from tests.netadapt.test_supernet import SPEC as QUADRANTS, quadrant_task

    def network() -> nn.Module:
        torch.manual_seed(0)
        supernet = build_supernet(QUADRANTS)
        space = supernet.space()
        return initial_network(supernet, space.with_widths({d.name: d.choices()[1] for d in space.dims}), "supernet")

    train, holdout, cfg = quadrant_task(128, 1), quadrant_task(64, 2), FinetuneConfig(epochs=4, batch_size=16, lr=0.05)
    model = network()
    curve = train_network(model, train, holdout, cfg, 0, torch.device("cpu"))
    assert [e.epoch for e in curve] == [1, 2, 3, 4] and curve[-1].loss < 0.5 * curve[0].loss
    assert curve[-1].holdout_acc > 0.9

    def killed(world):  # after the first epoch's progress is saved
        raise KeyboardInterrupt

    progress = Progress(tmp_path / "progress.pt", "key")
    with monkeypatch.context() as patch:
        patch.setattr(finetune, "barrier", killed)
        with pytest.raises(KeyboardInterrupt):
            train_network(network(), train, holdout, cfg, 0, torch.device("cpu"), progress)
    resumed = network()
    again = train_network(resumed, train, holdout, cfg, 0, torch.device("cpu"), progress)
    assert [(e.epoch, e.loss, e.holdout_acc) for e in again] == [(e.epoch, e.loss, e.holdout_acc) for e in curve]
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in model.state_dict().items())


def test_the_initial_network_starts_from_bn_statistics_of_its_own_architecture():
    """The super-network's running statistics are the full network's; the discovered network starts
    from statistics re-estimated on train batches, as the search scored it (a smaller kernel or
    width left on the full network's statistics predicted one class: test accuracy at chance)."""
    from netadapt.evaluation import recalibrate_bn
    from tests.netadapt.test_supernet import SPEC as QUADRANTS, quadrant_task

    torch.manual_seed(0)
    supernet = build_supernet(QUADRANTS)
    arch = supernet.space().smallest()
    train = quadrant_task(128, 1)
    as_is = initial_network(supernet, arch, "supernet")
    started = initial_network(supernet, arch, "supernet", train, 2, 32)
    expected = extract(supernet, arch)
    recalibrate_bn(expected, train, 2, 32, torch.device("cpu"))
    norms = lambda m: [(b.running_mean, b.running_var) for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    assert norms(started)
    for (mean, var), (want_mean, want_var), (old_mean, _) in zip(norms(started), norms(expected), norms(as_is)):
        assert torch.equal(mean, want_mean) and torch.equal(var, want_var) and not torch.equal(mean, old_mean)
    scratch = initial_network(supernet, arch, "scratch", train, 2, 32)
    assert all(torch.equal(m, torch.zeros_like(m)) for m, _ in norms(scratch))  # from scratch: reset, not calibrated
