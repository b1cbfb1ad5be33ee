"""`supernet.nproc` / `finetune.nproc` through the CLI: the stages train under torchrun (gloo), rank 0
alone writes, and a rank's failure is reported by the launcher (the ranks' training itself:
tests/netadapt/test_distributed.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from netadapt.checkpoints import load_supernet
from netadapt_flows.cli import main
from tests import presets


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[list[str], Path]:
    """A prepared project (data whose classes a network tells apart); each test trains in its own
    folders, from a copy of the prepared data (`folders`)."""
    root = tmp_path_factory.mktemp("ranks")
    data = presets.separable_data(root / "data", train=300, test=100)
    args = ["-S", "data.name=fashion-mnist", "-S", f"data.root={data}", *presets.TINY_ARGS]
    assert main(["prepare", *args, *presets.outputs(root)]) == 0
    return args, root


def folders(root: Path, name: str) -> list[str]:
    if not (root / name / "a" / "prepared").exists():
        shutil.copytree(root / "a" / "prepared", root / name / "a" / "prepared")
    return presets.outputs(root / name)


@pytest.mark.slow  # torchrun starts two training processes
def test_netadapt_supernet_and_finetune_on_two_processes(prepared, capsys):
    """`supernet.nproc: 2` trains under torchrun (gloo) and rank 0 alone writes: one checkpoint,
    one report, the launcher's metrics are rank 0's; the network equals one process's (as the ranks'
    training loop does in tests/netadapt/test_distributed.py). `finetune.nproc: 2` trains the
    discovered network on two processes too, and it learns: well above chance (0.1) on the holdout."""
    args, root = prepared
    one, two = folders(root, "one"), folders(root, "two")
    exact = ["-S", "supernet.largest=group", "-S", "supernet.distill=0"]  # BN of the full pass is per rank
    assert main(["supernet", *args, *exact, *one]) == 0
    capsys.readouterr()
    assert main(["supernet", *args, *exact, "-S", "supernet.nproc=2", *two, "--json"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    report = root / "two" / "a" / "reports" / "supernet.json"
    assert json.loads(printed) == json.loads(report.read_text())
    single = json.loads((root / "one" / "a" / "reports" / "supernet.json").read_text())
    assert json.loads(printed)["loss"] == pytest.approx(single["loss"], rel=1e-4)
    a, _ = load_supernet(root / "one" / "a" / "supernet" / "supernet.pt")
    b, _ = load_supernet(root / "two" / "a" / "supernet" / "supernet.pt")
    for name, value in a.state_dict().items():
        assert torch.allclose(b.state_dict()[name].float(), value.float(), rtol=1e-3, atol=1e-4), name
    assert sorted(p.name for p in (root / "two" / "a" / "supernet").iterdir()) == ["supernet.pt"]
    assert not (root / "two" / "a" / "progress" / "supernet.pt").exists(), "rank 0 cleared its progress"

    for stage in ("search", "finetune"):
        assert main([stage, *args, "-S", "finetune.nproc=2", *two]) == 0
    assert (root / "two" / "a" / "finetune" / "model.pt").is_file() and (root / "two" / "a" / "finetune" / "model.onnx").is_file()
    finetuned = json.loads((root / "two" / "a" / "reports" / "finetune.json").read_text())
    assert finetuned["holdout_acc"] >= 0.5, finetuned


def test_a_batch_that_does_not_split_into_the_processes_is_refused_naming_the_key(prepared, capsys):
    args, root = prepared
    assert main(["supernet", *args, "-S", "supernet.nproc=3", *folders(root, "bad")]) == 2
    assert "supernet.nproc: a batch of 32 does not split into 3 processes of whole groups of 8" in capsys.readouterr().err
    assert not (root / "bad" / "a" / "supernet").exists()


@pytest.mark.slow  # torchrun starts two training processes
def test_what_a_rank_raised_is_reported_by_the_launcher(prepared, capsys):
    args, root = prepared
    where = folders(root, "damaged")
    images = root / "damaged" / "a" / "prepared" / "train.images.npy"
    images.write_bytes(images.read_bytes()[:-10])
    assert main(["supernet", *args, "-S", "supernet.nproc=2", *where]) == 2
    err = capsys.readouterr().err
    assert f"{images}: " in err and "2 training processes (torchrun) failed" in err
    assert not (root / "damaged" / "a" / "supernet").exists()
