"""A user's own network by name, with its own trained weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from examples import mymodels
from netadapt.arch import ModelSpec
from netadapt.errors import ConfigError
from netadapt.graph import TracedNetwork
from netadapt.models import build_supernet
from netadapt.models.any_model import build_module, load_weights

TINY = "examples.mymodels:TinyResNet"


def spec(name: str = TINY, **kwargs) -> ModelSpec:
    return ModelSpec(name, (1, 12, 12), 7, granularity=4, kwargs=kwargs)


def test_the_data_gives_classes_and_channels_the_params_give_the_rest():
    module = build_module(TINY, spec(width=8))
    assert module.head.out_features == 7 and module.stem[0].in_channels == 1 and module.stem[0].out_channels == 8


def test_a_plain_module_becomes_a_traced_super_network_and_builtins_stay_as_they_are():
    assert isinstance(build_supernet(spec()), TracedNetwork)
    builtin = build_supernet(ModelSpec("plain_cnn", (1, 12, 12), 7))
    assert not isinstance(builtin, TracedNetwork) and builtin.space().dims


def not_a_model(num_classes: int = 10) -> int:
    return num_classes


@pytest.mark.parametrize("name, message", [
    ("tests.netadapt.models.test_any_model:not_a_model", "returned int, not a torch.nn.Module"),
    ("examples.mymodels:SMALL", "neither a torch.nn.Module class nor a function"),
    ("examples.mymodels:Missing", "cannot import"),
    ("no_such_package.models:Net", "model.path or PYTHONPATH"),
    ("timm:resnet18", "needs timm"),
])
def test_a_name_that_is_not_a_model_is_refused_naming_the_key(name, message):
    with pytest.raises(ConfigError, match="model.name") as err:
        build_supernet(spec(name))
    assert message in str(err.value)


def test_unknown_kwargs_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"model.kwargs: examples.mymodels:TinyResNet\(depth=3, .*unexpected keyword"):
        build_supernet(spec(depth=3))


def test_trained_weights_start_the_super_network(tmp_path):
    torch.manual_seed(3)
    trained = mymodels.TinyResNet(num_classes=7, in_channels=1)
    path = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), path)
    net = build_supernet(spec(), path).eval()
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(net(x), trained.eval()(x))


def test_weights_that_do_not_fit_name_the_first_mismatching_key(tmp_path):
    wrong = mymodels.TinyResNet(num_classes=7, in_channels=1, width=8).state_dict()
    torch.save(wrong, tmp_path / "w.pt")
    with pytest.raises(ConfigError, match=r"key 'stem.0.weight' has shape \(8, 1, 3, 3\), the model's \(16, 1, 3, 3\)"):
        build_supernet(spec(), tmp_path / "w.pt")
    partial = {k: v for k, v in mymodels.TinyResNet(7, 1).state_dict().items() if not k.startswith("head")}
    torch.save(partial, tmp_path / "p.pt")
    with pytest.raises(ConfigError, match="key 'head.weight' of the model is missing"):
        build_supernet(spec(), tmp_path / "p.pt")


def test_a_pickled_module_loads_only_when_the_user_opts_in(tmp_path):
    module = mymodels.TinyResNet(num_classes=7, in_channels=1)
    torch.save(module, tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="model.checkpoint_pickle: true"):
        load_weights(mymodels.TinyResNet(7, 1), tmp_path / "m.pt")
    target = mymodels.TinyResNet(7, 1)
    load_weights(target, tmp_path / "m.pt", allow_pickle=True)
    assert torch.equal(target.head.weight, module.head.weight)


def test_a_missing_checkpoint_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="model.checkpoint: .* not found"):
        load_weights(nn.Linear(2, 2), tmp_path / "nope.pt")
