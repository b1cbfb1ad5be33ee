"""Bring your own model: a module defined only here is searched through the public protocol."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from netadapt.arch import Architecture, Dimension, ModelSpec, pinned
from netadapt.bypass import residual_bypass
from netadapt.config import parse_config
from netadapt.errors import ConfigError, NetAdaptError
from netadapt.layers import LayerSpec, total_params
from netadapt.models import SearchableModel, build_supernet, extract
from netadapt.ordered_dropout import channel_mask


class TinyNet(nn.Module):
    """conv(hidden, searchable) -> residual 1x1 block (bypassable) -> linear. No BN, no blocks library."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec, c, g = spec, 16, spec.granularity
        self.conv = nn.Conv2d(spec.input_shape[0], c, 3, padding=1)
        self.res = nn.Conv2d(c, c, 1)
        self.fc = nn.Linear(c, spec.num_classes)
        self._space = Architecture(spec, (Dimension("hidden", c, c, g, g), Dimension("res", c, c, g, 0)))

    def space(self) -> Architecture:
        return self._space

    def forward(self, x, widths=None):
        widths = widths or {}
        h = channel_mask(torch.relu(self.conv(x)), widths.get("hidden"))
        h = residual_bypass(h, channel_mask(self.res(h), widths.get("hidden")), widths.get("res"))
        return self.fc(h.mean((2, 3)))

    def extract(self, arch: Architecture) -> nn.Module:
        hid, res = arch.widths["hidden"], arch.widths["res"]
        conv = nn.Conv2d(self.conv.in_channels, hid, 3, padding=1)
        conv.weight.data, conv.bias.data = self.conv.weight.data[:hid].clone(), self.conv.bias.data[:hid].clone()
        fc = nn.Linear(hid, self.fc.out_features)
        fc.weight.data, fc.bias.data = self.fc.weight.data[:, :hid].clone(), self.fc.bias.data.clone()
        keep = min(res, hid)
        resc = None
        if keep:
            resc = nn.Conv2d(hid, keep, 1)
            resc.weight.data = self.res.weight.data[:keep, :hid].clone()
            resc.bias.data = self.res.bias.data[:keep].clone()

        class Slim(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv, self.res, self.fc = conv, resc, fc

            def forward(self, x):
                h = torch.relu(self.conv(x))
                if self.res is not None:
                    h = torch.cat([h[:, :keep] + self.res(h), h[:, keep:]], 1)
                return self.fc(h.mean((2, 3)))

        return Slim()

    def layers(self, arch: Architecture) -> list[LayerSpec]:
        hid, res = arch.widths["hidden"], arch.widths["res"]
        c, h, w = self.spec.input_shape
        specs = [LayerSpec("conv", c, hid, h, w, 3, bias=True)]
        if min(res, hid):
            specs.append(LayerSpec("conv", hid, min(res, hid), h, w, 1, bias=True))
        return specs + [LayerSpec("linear", hid, self.spec.num_classes, 1, 1, bias=True)]


NAME = f"{__name__}:TinyNet"


def test_a_model_defined_outside_the_package_is_searchable():
    cfg = parse_config({"model": {"name": NAME}})
    model = build_supernet(ModelSpec(cfg.model.name, (1, 8, 8), 4))
    assert isinstance(model, SearchableModel)
    space = model.space()
    x = torch.randn(5, 1, 8, 8)
    for widths in [{"hidden": 16, "res": 16}, {"hidden": 8, "res": 0}, {"hidden": 8, "res": 16},
                   {"hidden": 16, "res": 8}]:
        arch = space.with_widths(widths)
        slim = extract(model, arch)
        with torch.no_grad():
            assert torch.allclose(slim(x), model(x, arch.widths), atol=1e-5), widths
        assert sum(p.numel() for p in slim.parameters()) == total_params(model.layers(arch))


class PinningTinyNet(TinyNet):
    """TinyNet whose space honours `spec.fixed`, as the protocol asks."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self._space = Architecture(spec, pinned(self._space.dims, spec.fixed))


def test_a_protocol_model_must_honour_model_fixed_in_its_space():
    """A SearchableModel builds its own space: one that leaves a `model.fixed` dimension free is
    refused naming the key (the search would move it); one built with `pinned` is searched with it fixed."""
    with pytest.raises(ConfigError, match="model.fixed: .*:TinyNet implements SearchableModel, and its space"):
        build_supernet(ModelSpec(NAME, (1, 8, 8), 4, fixed=("res",)))
    space = build_supernet(ModelSpec(f"{__name__}:PinningTinyNet", (1, 8, 8), 4, fixed=("res",))).space()
    assert space.dim("res").choices() == [16] and space.dim("hidden").choices() == [8, 16]


def test_unknown_or_non_conforming_models_fail_naming_the_key():
    with pytest.raises(ConfigError, match="model.name: cannot import 'no_such_module:Net'"):
        build_supernet(ModelSpec("no_such_module:Net", (1, 8, 8), 4))
    with pytest.raises(ConfigError, match="model.name: torch.nn:Identity: no channel the search can shrink"):
        build_supernet(ModelSpec("torch.nn:Identity", (1, 8, 8), 4))
    with pytest.raises(ConfigError, match="model.name: must be one of 'mobilenet_v2'"):
        parse_config({"model": {"name": "resnet 50"}})


@pytest.mark.parametrize("name, why", [("os:system", "neither a torch.nn.Module class nor a function"),
                                       ("builtins:print", "neither a torch.nn.Module class nor a function"),
                                       ("torch.nn:Linear", "give its arguments in model.kwargs")])
def test_a_model_name_never_calls_anything_but_a_model_class(name, why, monkeypatch):
    """`model.name: os:system` once ran a shell command with the spec as argument."""
    called = []
    monkeypatch.setattr("os.system", functools.partial(lambda *a: called.append(a)))  # not a function
    with pytest.raises(ConfigError, match=f"model.(name|kwargs): .*{why}"):
        build_supernet(ModelSpec(name, (1, 8, 8), 4))
    assert not called


def test_a_checkpoint_naming_another_callable_is_refused(tmp_path):
    """The model name stored in a checkpoint is one the run's params name (or a built-in), checked before
    anything is imported (`checkpoints.check_model_name`); the params' name goes through `resolve`."""
    from netadapt.checkpoints import load_supernet, save_supernet

    model = build_supernet(ModelSpec(NAME, (1, 8, 8), 4))
    save_supernet(tmp_path / "s.pt", model, "digest")
    blob = torch.load(tmp_path / "s.pt", weights_only=True)
    blob["arch"] = blob["arch"].replace(NAME, "os:system")
    torch.save(blob, tmp_path / "s.pt")
    with pytest.raises(NetAdaptError, match="names model 'os:system', which is neither the params' model.name"):
        load_supernet(tmp_path / "s.pt", NAME)
