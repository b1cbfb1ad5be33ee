import torch

from netadapt.bypass import Bypass, ResidualBypass, bypass, residual_bypass


def test_width_zero_is_the_identity():
    x, y = torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)
    assert torch.equal(bypass(x, y, 0), x)
    assert torch.equal(residual_bypass(x, y, 0), x)


def test_channels_at_or_beyond_width_pass_the_input_through():
    x, y = torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)
    out = bypass(x, y, 5)
    assert torch.equal(out[:, :5], y[:, :5]) and torch.equal(out[:, 5:], x[:, 5:])
    assert torch.equal(bypass(x, y, 8), y)


def test_residual_form_equals_cbc_of_the_whole_block():
    """For block(x) = x + branch(x), CBC equals zeroing the branch from channel w on."""
    x, branch = torch.randn(4, 8, 3, 3), torch.randn(4, 8, 3, 3)
    for w in (0, 3, 8):
        assert torch.allclose(residual_bypass(x, branch, w), bypass(x, x + branch, w))


def test_per_sample_widths():
    x, y = torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)
    out = bypass(x, y, torch.tensor([0, 8]))
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], y[1])


def test_physical_modules_equal_the_masked_forms():
    x = torch.randn(2, 8, 3, 3)
    proj = torch.nn.Conv2d(8, 3, 1)  # computes 3 of the 8 channels
    full = torch.cat([proj(x), torch.zeros(2, 5, 3, 3)], 1)
    assert torch.allclose(ResidualBypass(proj, 3, 8)(x), residual_bypass(x, full, 3))
    assert torch.allclose(Bypass(proj, 3, 8)(x), bypass(x, full, 3))
    widen = torch.nn.Conv2d(8, 12, 1)  # a plain bypassable block may compute more channels than it gets
    assert torch.equal(Bypass(widen, 12, 8)(x), widen(x))
