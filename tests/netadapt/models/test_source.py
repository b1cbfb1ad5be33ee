"""The user's model code behind `model.name`: found on `model.path` without running it, digested
(its package's files, or an installed distribution's version), and errors that name the key."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from netadapt.errors import ConfigError
from netadapt.io import code_version
from netadapt.models import source
from netadapt.models.source import importable, model_path_entries, model_source_digest

MARKER = "import pathlib; pathlib.Path(__file__).with_name('IMPORTED').write_text('{name}')\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project root (the working directory) with a model folder `models/` holding a plain module
    and a package, each writing a marker file if it is ever imported, and a folder of other code."""
    models = tmp_path / "models"
    (models / "srcpkg_nets").mkdir(parents=True)
    (models / "srcmod_net.py").write_text(MARKER.format(name="srcmod_net") + "class Net: pass\n")
    (models / "srcpkg_nets" / "__init__.py").write_text(MARKER.format(name="srcpkg_nets"))
    (models / "srcpkg_nets" / "resnet.py").write_text(MARKER.format(name="resnet") + "from .blocks import Block\n")
    (models / "srcpkg_nets" / "blocks.py").write_text("class Block: pass\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "unrelated.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_module_digest_follows_its_file_only(project: Path):
    before = model_source_digest("srcmod_net:Net", "models")
    assert before and model_source_digest("srcmod_net:Net", "models") == before, "deterministic"
    (project / "other" / "unrelated.py").write_text("x = 2\n")
    (project / "models" / "srcpkg_nets" / "blocks.py").write_text("class Block: width = 2\n")
    assert model_source_digest("srcmod_net:Net", "models") == before, "another module's edit is not its code"
    (project / "models" / "srcmod_net.py").write_text("class Net: width = 2\n")
    assert model_source_digest("srcmod_net:Net", "models") != before


def test_a_package_module_digest_covers_its_whole_package(project: Path):
    before = model_source_digest("srcpkg_nets.resnet:ResNet", "models")
    (project / "other" / "unrelated.py").write_text("x = 2\n")
    (project / "models" / "srcmod_net.py").write_text("class Net: width = 2\n")
    assert model_source_digest("srcpkg_nets.resnet:ResNet", "models") == before
    (project / "models" / "srcpkg_nets" / "blocks.py").write_text("class Block: width = 2\n")  # what it imports
    after = model_source_digest("srcpkg_nets.resnet:ResNet", "models")
    assert after != before
    (project / "models" / "srcpkg_nets" / "deep").mkdir()
    (project / "models" / "srcpkg_nets" / "deep" / "layer.py").write_text("y = 1\n")
    assert model_source_digest("srcpkg_nets.resnet:ResNet", "models") != after


def test_finding_the_module_never_runs_it(project: Path):
    for name in ("srcmod_net:Net", "srcpkg_nets.resnet:ResNet", "srcpkg_nets:Anything"):
        model_source_digest(name, "models")
        code_version(name, "models")
    assert not list(project.rglob("IMPORTED")), "a module (or its package's __init__) was executed"
    assert not {"srcmod_net", "srcpkg_nets", "srcpkg_nets.resnet"} & set(sys.modules)


def test_the_model_code_changes_the_code_version_and_a_builtin_adds_nothing(project: Path):
    assert model_source_digest("mobilenet_v2", "models") == ""
    assert code_version("mobilenet_v2", "models") == code_version() == code_version("plain_cnn", "nowhere")
    assert model_source_digest("netadapt.models.plain_cnn:PlainCNN", None) == "", "the library's code version"
    before = code_version("srcmod_net:Net", "models")
    assert before != code_version()
    (project / "models" / "srcmod_net.py").write_text("class Net: width = 2\n")
    assert code_version("srcmod_net:Net", "models") != before


def test_model_path_is_relative_to_the_project_root_and_first_while_importing(project: Path):
    assert model_path_entries(None) == model_path_entries("") == []
    (entry,) = model_path_entries("models")
    assert entry == str((project / "models").resolve())
    path = list(sys.path)
    with importable("models"):
        assert sys.path[0] == entry
        module = __import__("srcmod_net")
        assert module.Net.__name__ == "Net"
    assert sys.path == path, "sys.path is restored"
    del sys.modules["srcmod_net"]


def test_a_missing_or_non_folder_model_path_names_the_key(project: Path):
    with pytest.raises(ConfigError, match=r"^model.path: no folder 'nowhere' \(relative to the project root"):
        model_source_digest("srcmod_net:Net", "nowhere")
    with pytest.raises(ConfigError, match=r"^model.path: 'other/unrelated.py' is not a folder"):
        with importable("other/unrelated.py"):
            pass


def test_a_module_that_cannot_be_found_names_model_name(project: Path):
    with pytest.raises(ConfigError, match=r"^model.name: cannot import 'nosuch_mod:Net' \(no module 'nosuch_mod' on "
                                          r"model.path \('models'\) or sys.path: put its folder"):
        model_source_digest("nosuch_mod:Net", "models")
    with pytest.raises(ConfigError, match=r"^model.name: cannot import 'srcpkg_nets.vgg:VGG' "
                                          r"\(module 'srcpkg_nets' has no module 'vgg'\)$"):
        model_source_digest("srcpkg_nets.vgg:VGG", "models")
    with pytest.raises(ConfigError, match=r"^model.name: cannot import 'srcmod_net.sub:Net' "
                                          r"\(module 'srcmod_net' is not a package\)$"):
        model_source_digest("srcmod_net.sub:Net", "models")
    with pytest.raises(ConfigError, match=r"^model.name: 'no_colon' is not a built-in model"):
        model_source_digest("no_colon", "models")


@pytest.mark.parametrize("hub", ["torchvision", "timm"])
def test_a_hub_model_is_keyed_by_its_installed_version_never_importing_it(hub: str, monkeypatch):
    """torchvision may be installed yet fail to import (a CUDA build beside a CPU torch): the
    version comes from the distribution's metadata."""
    imported = hub in sys.modules
    versions = {hub: "1.0"}

    def version(dist: str) -> str:
        if dist not in versions:
            raise importlib.metadata.PackageNotFoundError(dist)
        return versions[dist]

    monkeypatch.setattr(source.importlib.metadata, "version", version)
    first = model_source_digest(f"{hub}:resnet18", "nowhere")  # (model.path plays no part)
    versions[hub] = "2.0"
    assert model_source_digest(f"{hub}:resnet18", None) not in ("", first)
    del versions[hub]
    with pytest.raises(ConfigError, match=f"^model.name: '{hub}:resnet18' needs the {hub} package, "
                                          f"which is not installed \\(pip install {hub}\\)$"):
        model_source_digest(f"{hub}:resnet18", None)
    assert (hub in sys.modules) == imported


def test_an_installed_package_is_keyed_by_its_distributions_version(monkeypatch):
    """A module of a site-packages distribution (torch here): its version, not its thousands of files."""
    real = importlib.metadata.version
    first = model_source_digest("torch.nn:Identity", None)
    monkeypatch.setattr(source.importlib.metadata, "version",
                        lambda dist: "9.9" if dist == "torch" else real(dist))
    assert model_source_digest("torch.nn:Identity", None) != first


def test_an_empty_model_path_is_refused_when_the_params_are_read():
    """dvc.yaml lists `${model.path}` as a dep: an empty one would break every `dvc` command."""
    from netadapt.config import parse_config

    assert parse_config({}).model.path == "models"
    with pytest.raises(ConfigError, match=r"^model.path: must name the folder of your model's code"):
        parse_config({"model": {"path": " "}})


def test_given_the_model_name_only_the_users_code_needs_the_folder(tmp_path: Path, monkeypatch):
    """A built-in, hub or library model runs in a project without `models/`; a user's module does not."""
    monkeypatch.chdir(tmp_path)
    path = list(sys.path)
    for name in ("mobilenet_v2", "torchvision:resnet18", "netadapt.models.plain_cnn:PlainCNN"):
        with importable("models", name):
            assert sys.path == path
    with pytest.raises(ConfigError, match=r"^model.path: no folder 'models'"):
        with importable("models", "mymodels:MyNet"):
            pass
    with pytest.raises(ConfigError, match=r"^model.name: 'mymodels' is not a built-in model"):
        with importable("models", "mymodels"):
            pass
