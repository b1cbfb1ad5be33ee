import torch

from netadapt.arch import Architecture, Dimension, ModelSpec
from netadapt.ordered_dropout import GroupStatsBatchNorm2d, channel_mask, sample_widths

ARCH = Architecture(ModelSpec("plain_cnn", (1, 8, 8), 10),
                    tuple(Dimension(f"d{i}", 64, 64, 8, 0 if i % 2 else 8) for i in range(4)))


def test_channel_mask_keeps_a_prefix_per_sample():
    x = torch.ones(3, 6, 2, 2)
    out = channel_mask(x, torch.tensor([0, 2, 6]))
    assert out[0].sum() == 0 and out[1, :2].all() and out[1, 2:].sum() == 0 and out[2].all()
    assert torch.equal(channel_mask(x, 6), x) and channel_mask(x, 4)[:, 4:].sum() == 0


def test_sandwich_groups_hold_largest_smallest_and_random_widths():
    widths = sample_widths(ARCH, 64, torch.Generator().manual_seed(0), "sandwich", group_size=8)
    groups = 64 // 8
    for d in ARCH.dims:
        w = widths[d.name]
        assert w.shape == (64,)
        assert (w[0::groups] == d.max_width).all(), "group 0 (samples 0, 8, 16...) is the full network"
        assert (w[1::groups] == d.min_width).all(), "group 1 is the smallest network"
        assert set(w.tolist()) <= set(d.choices())
        for g in range(groups):
            assert len(set(w[g::groups].tolist())) == 1, "a group shares one draw"
    assert len({tuple(int(widths[d.name][i]) for d in ARCH.dims) for i in range(groups)}) > 2


def test_per_sample_draws_differ_within_one_batch_and_are_seeded():
    a = sample_widths(ARCH, 32, torch.Generator().manual_seed(1), "random", group_size=1)
    b = sample_widths(ARCH, 32, torch.Generator().manual_seed(1), "random", group_size=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(set(a["d0"].tolist())) > 1, "two samples of one batch see different widths"
    assert (a["d0"][0] == 64) and sample_widths(ARCH, 4, torch.Generator(), "none") is None


def test_group_statistics_equal_batch_norm_run_on_each_group_separately():
    torch.manual_seed(0)
    groups, x = 4, torch.randn(32, 6, 5, 5) * torch.arange(1, 33).view(32, 1, 1, 1)
    gbn = GroupStatsBatchNorm2d(6)
    gbn.weight.data.uniform_(0.5, 2)
    gbn.bias.data.uniform_(-1, 1)
    gbn.groups = groups
    initial = {k: v.clone() for k, v in gbn.state_dict().items()}
    xg = x.clone().requires_grad_()
    out = gbn(xg)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    for g in range(groups):
        ref_bn = torch.nn.BatchNorm2d(6)
        ref_bn.load_state_dict(initial)
        xr = x[g::groups].clone().requires_grad_()
        ref = ref_bn(xr)
        (ref * torch.linspace(-1, 1, out.numel()).view_as(out)[g::groups]).sum().backward()
        assert torch.allclose(out[g::groups], ref, atol=1e-5)
        assert torch.allclose(xg.grad[g::groups], xr.grad, atol=1e-5)
        if g == 0:
            assert torch.allclose(gbn.running_mean, ref_bn.running_mean, atol=1e-6)
            assert torch.allclose(gbn.running_var, ref_bn.running_var, atol=1e-5)


def test_group_statistics_with_one_group_is_plain_batch_norm():
    x = torch.randn(8, 3, 4, 4)
    gbn, bn = GroupStatsBatchNorm2d(3), torch.nn.BatchNorm2d(3)
    assert torch.allclose(gbn(x), bn(x)) and torch.allclose(gbn.running_var, bn.running_var)


def test_group_stats_batch_norm_accepts_any_memory_layout():
    """A conv on one-channel images with channels-last-like strides emits channels-last tensors;
    the per-group statistics must not depend on the layout."""
    torch.manual_seed(0)
    x = torch.randn(8, 6, 5, 5)
    plain, strided = GroupStatsBatchNorm2d(6).train(), GroupStatsBatchNorm2d(6).train()
    plain.groups = strided.groups = 4
    expected = plain(x)
    out = strided(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(strided.running_mean, plain.running_mean)
