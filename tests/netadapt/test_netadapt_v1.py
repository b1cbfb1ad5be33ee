import torch

from netadapt.arch import ModelSpec
from netadapt.models import build_supernet, extract
from netadapt.models.blocks import filter_norms
from tests.netadapt.models.test_models import trained_looking


def test_keeping_filters_preserves_the_function_and_puts_the_largest_first():
    for name in ["plain_cnn", "mobilenet_v2", "mobilenet_v1"]:
        model = trained_looking(ModelSpec(name, (1, 28, 28), 10))
        x = torch.randn(2, 1, 28, 28)
        before = model(x)
        dim = next(d for d in model.space().dims if model.can_reorder(d.name))
        producer = next(b.producer(dim.name) for b in model.blocks if b.producer(dim.name) is not None)
        norms = filter_norms(producer).clone()
        model.keep_largest_filters(dim.name, dim.max_width)
        assert torch.allclose(model(x), before, atol=1e-5), name
        assert torch.equal(filter_norms(producer), norms.sort(descending=True).values), name


def test_v1_pruning_keeps_the_largest_norm_filters():
    """Shrinking conv0 from 16 to 8 keeps exactly the 8 filters of largest L2 norm."""
    model = build_supernet(ModelSpec("plain_cnn", (1, 28, 28), 10)).eval()
    conv = model.blocks[0].op.conv
    with torch.no_grad():
        conv.weight.mul_(torch.linspace(0.1, 2.0, 16).roll(5).view(16, 1, 1, 1))
    norms = conv.weight.flatten(1).norm(dim=1)
    expected = conv.weight[norms.topk(8).indices.sort().values]
    model.keep_largest_filters("conv0", 16)
    slim = extract(model, model.space().with_widths({"conv0": 8}))
    kept = slim[0][0].weight
    assert {tuple(w.flatten().tolist()) for w in kept} == {tuple(w.flatten().tolist()) for w in expected}
