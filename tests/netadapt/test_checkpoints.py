"""No code from artifacts (issue 27): a checkpoint's stored model name is checked against the run's
own `model.name` (or a built-in) before anything resolves, that is imports, it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from netadapt.arch import ModelSpec
from netadapt.checkpoints import load_network, load_supernet, save_network, save_supernet
from netadapt.errors import NetAdaptError
from netadapt.models import build_supernet, extract

SPEC = ModelSpec("plain_cnn", (1, 8, 8), 3)


def plant(folder: Path, module: str) -> Path:
    """A module beside the checkpoint that, imported, writes a marker file (and would define `Net`)."""
    marker = folder / f"{module}-was-imported"
    (folder / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n"
                                         "import torch\nclass Net(torch.nn.Module):\n    pass\n")
    return marker


def rename_model(path: Path, name: str) -> None:
    blob = torch.load(path, weights_only=True)
    blob["arch"] = blob["arch"].replace('"plain_cnn"', f'"{name}"')
    torch.save(blob, path)


@pytest.mark.parametrize("kind", ["supernet", "final"])
@pytest.mark.parametrize("name", ["pwn:Net", "this:X"])
def test_a_checkpoint_naming_another_module_is_refused_before_it_is_imported(tmp_path, monkeypatch, kind, name):
    """`pwn.py` next to the checkpoint, on the import path (as the repository root is under
    `python -m`): refused naming the file, and never imported; `this` (the Zen of Python) neither."""
    marker = plant(tmp_path, "pwn")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "this", raising=False)
    supernet = build_supernet(SPEC)
    path = tmp_path / "model.pt"
    if kind == "supernet":
        save_supernet(path, supernet, "digest")
    else:
        save_network(path, extract(supernet, supernet.space()), supernet.space(), "digest")
    rename_model(path, name)
    load = load_supernet if kind == "supernet" else load_network
    for expected in ("", "plain_cnn", "mypkg.models:Net"):
        with pytest.raises(NetAdaptError, match=rf"^{path}: the .* names model '{name}', which is neither .* "
                                                rf"refused before importing anything"):
            load(path, expected)
    assert not marker.exists(), "the planted module was imported"
    assert "pwn" not in sys.modules and "this" not in sys.modules


def test_the_runs_own_model_name_and_built_ins_are_accepted(tmp_path):
    path = tmp_path / "s.pt"
    save_supernet(path, build_supernet(SPEC), "digest")
    assert load_supernet(path)[1] == "digest", "a built-in needs no expected name"
    assert load_supernet(path, "mypkg.models:Net")[1] == "digest", "a built-in is accepted whatever the params say"
    rename_model(path, "netadapt.models.plain_cnn:PlainCNN")
    assert load_supernet(path, "netadapt.models.plain_cnn:PlainCNN")[1] == "digest", "the params' own name"


def test_a_checkpoint_whose_model_name_is_not_a_string_names_the_file(tmp_path):
    path = tmp_path / "s.pt"
    save_supernet(path, build_supernet(SPEC), "digest")
    rename_model(path, "plain_cnn")
    blob = torch.load(path, weights_only=True)
    blob["arch"] = blob["arch"].replace('"name": "plain_cnn"', '"name": ["os", "system"]')
    torch.save(blob, path)
    with pytest.raises(NetAdaptError, match=f"^{path}: "):
        load_supernet(path, "plain_cnn")


def test_a_checkpoint_cannot_move_the_users_model_to_a_folder_of_its_own(tmp_path):
    """The stored model spec also names the folder its module is imported from: it must be the run's."""
    import json
    from types import SimpleNamespace

    from examples import mymodels
    from netadapt.arch import ModelSpec
    from netadapt.checkpoints import load_supernet, save_supernet
    from netadapt.models import build_supernet
    from netadapt.models.source import model_reference

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "mymodels.py").write_text((Path(mymodels.__file__)).read_text())
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "mymodels.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    spec = ModelSpec("mymodels:TinyResNet", (1, 8, 8), 4, granularity=4, path=str(tmp_path / "mine"))
    save_supernet(tmp_path / "s.pt", build_supernet(spec), "digest")
    run = model_reference(SimpleNamespace(name="mymodels:TinyResNet", path=str(tmp_path / "mine")))
    assert load_supernet(tmp_path / "s.pt", run)[0].space().dims  # its own folder: loads
    blob = torch.load(tmp_path / "s.pt", weights_only=True)
    arch = json.loads(blob["arch"])
    arch["model"]["path"] = str(evil)
    blob["arch"] = json.dumps(arch)
    torch.save(blob, tmp_path / "s.pt")
    with pytest.raises(NetAdaptError, match="refused before importing anything"):
        load_supernet(tmp_path / "s.pt", run)
    assert not (tmp_path / "ran").exists()
