"""The CLI as a user meets it: bad input exits 2 with one line naming the key or file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netadapt_flows.cli import main
from tests.conftest import REPO

BAD_PARAMS = [
    (["-S", "foo=1"], "foo: unknown key"),
    (["-S", "search.bugdet=0.4"], "search.bugdet: unknown key"),
    (["-S", "supernet.epochs=three"], "supernet.epochs: must be an integer, got 'three'"),
    (["-S", "supernet.epochs=-1"], "supernet.epochs: must be >= 0, got -1"),
    (["-S", "finetune.epochs=1.5"], "finetune.epochs: must be an integer, got 1.5"),
    (["-S", "search.budget=-1"], "search.budget: must be > 0, got -1"),
    (["-S", "search.budget=0"], "search.budget: must be > 0, got 0"),
    (["-S", "search.budget=abc"], "search.budget: must be a number, got 'abc'"),
    (["-S", "search.budget=2"], "search.budget: a relative budget is a fraction of the base network"),
    (["-S", "model.granularity=0"], "model.granularity: must be >= 1, got 0"),
    (["-S", "data.holdout_fraction=1.5"], "data.holdout_fraction: must be < 1, got 1.5"),
    (["-S", "data.holdout_fraction=0"], "data.holdout_fraction: must be > 0, got 0"),
    (["-S", "data.name=imagenet"], "data.name: must be one of 'fashion-mnist', 'fashion-mnist-t10k'"),
    (["-S", "model.name=resnet50"], "model.name: must be one of 'mobilenet_v2'"),
    (["-S", "search.metric=flops"], "search.metric: must be one of 'latency', 'macs', 'params'"),
    (["-S", "profile.interpolate=maybe"], "profile.interpolate: must be a boolean, got 'maybe'"),
    (["-S", "profile.threads=0"], "profile.threads: must be >= 1, got 0"),
    (["-S", "search=3"], "search: must be a mapping, got 3"),
    (["-S", "search.budget"], "-S search.budget: expected key=value"),
    (["-S", "seed.x=1"], "seed: is not a section, cannot set seed.x"),
]


@pytest.mark.parametrize("args,message", BAD_PARAMS, ids=[a[-1] for a, _ in BAD_PARAMS])
def test_bad_params_fail_before_work_naming_the_key(args, message, tmp_path, capsys):
    code = main(["prepare", *args, "--artifacts", str(tmp_path / "a"), "--metrics", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("netadapt: error: ") and message in err
    assert err.count("\n") == 1, "one line"
    assert not (tmp_path / "a").exists() and not (tmp_path / "m").exists(), "no work was started"


def test_bad_params_file_contents(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("search: [unclosed\n")
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    for path, message in [(bad_yaml, "bad.yaml: not valid YAML"),
                          (not_mapping, "list.yaml: must hold a mapping of sections"),
                          (tmp_path / "missing.yaml", "missing.yaml: params file not found")]:
        assert main(["prepare", "--params", str(path)]) == 2
        assert message in capsys.readouterr().err


def test_prepare_writes_splits_and_metrics(idx_root, tmp_path, capsys):
    """Also: the stage starts by removing what interrupted atomic writes left behind, only that, and
    releases the project's lock when it is done."""
    leftovers = [tmp_path / "art" / "profile" / ".lut.csv.k2j4_x9a.tmp", tmp_path / "met" / ".prepare.json.abcd1234.tmp",
                 tmp_path / "plots" / ".fidelity.png.0a1b2c3d.tmp" / "x", tmp_path / "art" / ".profile.old" / "x"]
    kept = [tmp_path / "art" / "profile" / "notes.tmp", tmp_path / "met" / ".keep", tmp_path / "art" / ".x.old"]
    for path in leftovers + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    code = main(["prepare", "-S", "data.name=fashion-mnist", "-S", f"data.root={idx_root}",
                 "--artifacts", str(tmp_path / "art"), "--metrics", str(tmp_path / "met"),
                 "--plots", str(tmp_path / "plots"), "--json"])
    assert code == 0
    assert not [p for p in leftovers if p.exists() or p.parent.exists() and p.parent.name.startswith(".")]
    assert all(p.exists() for p in kept), "only the temp files' and staging folders' names are removed"
    assert not (tmp_path / "art" / ".lock").exists(), "the lock is released"
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "met" / "prepare.json").read_text())
    assert printed == json.loads((tmp_path / "art" / "reports" / "prepare.json").read_text())
    assert written == {k: printed[k] for k in ("train", "holdout", "test", "classes")}
    assert (written["train"], written["holdout"], written["test"], written["classes"]) == (180, 20, 50, 10)


def test_console_script_runs_as_installed():
    """`netadapt` on PATH (as dvc.yaml calls it) reaches the same main()."""
    exe = Path(sys.executable).with_name("netadapt")
    out = subprocess.run([str(exe), "prepare", "-S", "search.budget=-1"], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.strip() == "netadapt: error: search.budget: must be > 0, got -1"


def test_flow_and_serve_reject_bad_params_before_importing_prefect():
    """`-S search.budget=-1` fails at once: no Prefect import, no temporary or local server."""
    script = ("import sys; from netadapt_flows.cli import main; "
              "codes = [main([c, '-S', 'search.budget=-1']) for c in ('flow', 'serve')]; "
              "print(codes, 'prefect' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.split() == ["[2,", "2]", "False"], done.stderr
    assert done.stderr.splitlines() == ["netadapt: error: search.budget: must be > 0, got -1"] * 2


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    name, version = capsys.readouterr().out.split()
    assert name == "netadapt" and version[0].isdigit()
