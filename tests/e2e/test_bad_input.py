"""Bad input is refused before any work (issue 12, item 4).

One table, one test per kind of bad input: `netadapt <stage>` exits 2 with one line on stderr,
`netadapt: error: ...`, naming the full key (`supernet.lr`) or the file; no traceback; and the
stage's artifacts, metrics and plots folders are not created (config-level refusals) or are left
exactly as they were (data- and model-level refusals, checked before the stage's work).

Most kinds fail when the params are read (`netadapt.config`); data kinds when the dataset's files
are read (`netadapt.data`); model kinds where the super-network is built or the search starts
(`netadapt.stages.model_spec`, `netadapt.schedule`, the search's start checkpoint), on one shared
prepared project (plain CNN, tiny IDX data, a super-network trained for 0 epochs).
"""

from __future__ import annotations

import gzip
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from netadapt_flows.cli import main
from tests import presets
from tests.conftest import REPO, write_folders, write_idx, write_sha256sums
from tests.netadapt.test_config import BOMB_OVERRIDE, billion_laughs

OUTPUTS = ("a", "m", "p")  # --artifacts, --metrics, --plots under each test's tmp_path
IGNORED = {".lock"}  # the project lock a stage command takes (not an output)


@dataclass(frozen=True)
class Bad:
    kind: str  # the test id
    stage: str
    args: list[str]  # after the stage name; "{data}" is a tiny valid dataset, "{tmp}" the test's folder
    expect: str  # in the one-line message (the full key or the file)
    make: Callable[[Path], None] | None = None  # writes the bad file(s) under tmp
    project: bool = False  # start from a copy of the shared prepared project's artifacts
    cuda: bool = False  # CUDA reported absent (the kind is about a machine without it)


def _gz(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(content)


def _idx(tmp: Path, images: bytes | None = None, labels: bytes | None = None, n: int = 60,
         classes: int = 10) -> None:
    write_idx(tmp / "d", "t10k", n, classes=classes)
    if images is not None:
        _gz(tmp / "d" / "t10k-images-idx3-ubyte.gz", images)
    if labels is not None:
        _gz(tmp / "d" / "t10k-labels-idx1-ubyte.gz", labels)


def _params(content: bytes) -> Callable[[Path], None]:
    return lambda tmp: (tmp / "params.yaml").write_bytes(content)


def _text(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_bytes(content)


def _truncated_checkpoint(tmp: Path) -> None:
    blob = (tmp / "a" / "supernet" / "supernet.pt").read_bytes()
    (tmp / "plain.pt").write_bytes(blob[: len(blob) // 2])


def _not_a_checkpoint(tmp: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp / "plain.pt")


def _truncate_split(tmp: Path) -> None:
    path = tmp / "a" / "prepared" / "train.pt"
    path.write_bytes(path.read_bytes()[:200])


def _corrupt_meta(tmp: Path) -> None:
    (tmp / "a" / "prepared" / "meta.json").write_text('{"dataset": "fashion-mnist", "classes": ')


def _sums_not_utf8(tmp: Path) -> None:
    _idx(tmp)
    (tmp / "d" / "SHA256SUMS").write_bytes(b"\xff\xfe not a manifest\n")


def _sums_not_hex(tmp: Path) -> None:
    _idx(tmp)
    (tmp / "d" / "SHA256SUMS").write_text("z" * 64 + "  t10k-images-idx3-ubyte.gz\n")


FOREIGN_MODEL = "a.supernet.pwn:Net"  # `artifacts.supernet.pwn:Net` of the attack, in the test's folder


def _foreign_model(tmp: Path) -> None:
    """A super-network checkpoint naming a module planted beside it, which writes a marker if imported."""
    folder = tmp / "a" / "supernet"
    (folder / "pwn.py").write_text(f"open({str(tmp / 'pwned')!r}, 'w').write('ran')\n")
    blob = torch.load(folder / "supernet.pt", weights_only=True)
    blob["arch"] = blob["arch"].replace('"plain_cnn"', f'"{FOREIGN_MODEL}"')
    torch.save(blob, folder / "supernet.pt")


def _one_class(tmp: Path) -> None:
    write_folders(tmp / "f", ["cat"], {"train": 10, "test": 4})
    write_sha256sums(tmp / "f")


PARAMS = ["--params", "{tmp}/params.yaml"]
PROJECT = dict(project=True)
V1 = ["-S", "search.algorithm=netadapt", "-S", "search.start_checkpoint={tmp}/plain.pt"]
CUDA_OFF = dict(cuda=True)
DATA_T10K = ["-S", "data.name=fashion-mnist-t10k", "-S", "data.root={tmp}/d"]
IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"

CASES = [
    # ------------------------------------------------ non-finite floats, every kind of float key
    Bad("lr-inf", "prepare", ["-S", "supernet.lr=.inf"], "supernet.lr: must be a finite number, got inf"),
    Bad("lr-nan", "prepare", ["-S", "finetune.lr=.nan"], "finetune.lr: must be a finite number, got nan"),
    Bad("lr-minus-inf", "prepare", ["-S", "search.lr=-.inf"], "search.lr: must be a finite number, got -inf"),
    Bad("momentum-nan", "prepare", ["-S", "supernet.momentum=.nan"], "supernet.momentum: must be a finite number"),
    Bad("weight-decay-inf", "prepare", ["-S", "finetune.weight_decay=.inf"],
        "finetune.weight_decay: must be a finite number"),
    Bad("label-smoothing-nan", "prepare", ["-S", "supernet.label_smoothing=.nan"],
        "supernet.label_smoothing: must be a finite number"),
    Bad("budget-nan", "prepare", ["-S", "search.budget=.nan"], "search.budget: must be a finite number, got nan"),
    Bad("budget-absolute-inf", "prepare", ["-S", "search.budget_type=absolute", "-S", "search.budget=.inf"],
        "search.budget: must be a finite number, got inf"),
    Bad("budget-overflows-to-inf", "prepare", ["-S", "search.budget_type=absolute", "-S", "search.budget=1.0e+400"],
        "search.budget: must be a finite number, got inf"),
    Bad("budget-integer-beyond-float", "prepare",
        ["-S", "search.budget_type=absolute", "-S", "search.budget=1" + "0" * 400],
        "search.budget: must be a finite number, got 1.000e400"),
    Bad("initial-reduction-nan", "prepare", ["-S", "search.initial_reduction=.nan"],
        "search.initial_reduction: must be a finite number"),
    Bad("decay-inf", "prepare", ["-S", "search.decay=.inf"], "search.decay: must be a finite number"),
    Bad("holdout-fraction-nan", "prepare", ["-S", "data.holdout_fraction=.nan"],
        "data.holdout_fraction: must be a finite number"),
    Bad("test-fraction-minus-inf", "prepare", ["-S", "data.test_fraction=-.inf"],
        "data.test_fraction: must be a finite number"),
    Bad("width-mult-nan", "prepare", ["-S", "model.width_mult=.nan"], "model.width_mult: must be a finite number"),
    Bad("max-error-inf", "prepare", ["-S", "profile.max_error=.inf"], "profile.max_error: must be a finite number"),
    Bad("command-timeout-inf", "prepare", ["-S", "profile.command_timeout=.inf"],
        "profile.command_timeout: must be a finite number"),
    Bad("budget-tolerance-nan", "prepare", ["-S", "evaluate.budget_tolerance=.nan"],
        "evaluate.budget_tolerance: must be a finite number"),
    # ------------------------------------------------ absurd magnitudes
    Bad("lr-1e300", "prepare", ["-S", "supernet.lr=1.0e+300"], "supernet.lr: must be <= 10, got 1e+300"),
    Bad("lr-100", "prepare", ["-S", "finetune.lr=100"], "finetune.lr: must be <= 10, got 100"),
    Bad("weight-decay-5", "prepare", ["-S", "supernet.weight_decay=5"], "supernet.weight_decay: must be <= 1"),
    Bad("seed-2**32", "prepare", ["-S", f"seed={2**32}"], "seed: must be <= 4294967295, got 4294967296"),
    Bad("seed-1e14", "prepare", ["-S", f"seed={10**14}"], "seed: must be <= 4294967295"),
    Bad("seed-2**64", "prepare", ["-S", f"seed={2**64}"], "seed: must be <= 4294967295, got 1.844e19"),
    Bad("epochs-1e12", "prepare", ["-S", f"supernet.epochs={10**12}"], "supernet.epochs: must be <= 1000000"),
    Bad("finetune-epochs-1e7", "prepare", ["-S", f"finetune.epochs={10**7}"], "finetune.epochs: must be <= 1000000"),
    Bad("long-term-epochs-1e9", "prepare", ["-S", f"search.long_term_epochs={10**9}"],
        "search.long_term_epochs: must be <= 1000000"),
    Bad("repeats-1e9", "prepare", ["-S", f"profile.repeats={10**9}"], "profile.repeats: must be <= 1000000"),
    Bad("latency-repeats-1e12", "prepare", ["-S", f"evaluate.latency_repeats={10**12}"],
        "evaluate.latency_repeats: must be <= 1000000"),
    Bad("candidates-1e9", "prepare", ["-S", f"search.candidates={10**9}"], "search.candidates: must be <= 1000000"),
    Bad("max-halvings-2000", "prepare", ["-S", "search.max_halvings=2000"], "search.max_halvings: must be <= 64"),
    Bad("threads-1e5", "prepare", ["-S", "profile.threads=100000"], "profile.threads: must be <= 4096"),
    Bad("batch-size-1e9", "prepare", ["-S", f"supernet.batch_size={2**30}"], "supernet.batch_size: must be <= 1000000"),
    Bad("command-timeout-1e9", "prepare", ["-S", f"profile.command_timeout={10**9}"],
        "profile.command_timeout: must be <= 604800"),
    # ------------------------------------------------ the params file itself
    Bad("duplicate-section", "prepare", PARAMS, "params.yaml: line 3: search is given twice (first on line 1)",
        make=_params(b"search:\n  budget: 0.3\nsearch:\n  budget: 0.7\n")),
    Bad("duplicate-key", "prepare", PARAMS, "params.yaml: line 4: search.budget is given twice (first on line 2)",
        make=_params(b"search:\n  budget: 0.3\n  metric: macs\n  budget: 0.7\n")),
    Bad("duplicate-key-in-override", "prepare", ["-S", "search={budget: 0.3, budget: 0.4}"],
        "search: cannot parse override value '{budget: 0.3, budget: 0.4}': line 1: search.budget is given twice"),
    Bad("empty-params-file", "prepare", PARAMS, "params.yaml: empty (no sections)", make=_params(b"")),
    Bad("comments-only-params-file", "prepare", PARAMS, "params.yaml: empty (no sections)",
        make=_params(b"# search:\n#   budget: 0.4\n")),
    Bad("params-not-utf8", "prepare", PARAMS, "params.yaml: not UTF-8 text (byte 0xe9 on line 3)",
        make=_params(b"seed: 0\ntracking:\n  experiment: caf\xe9\n")),
    Bad("params-is-a-folder", "prepare", ["--params", "{tmp}"], "is a folder, not a params file"),
    Bad("params-a-scalar", "prepare", PARAMS, "params.yaml: must hold a mapping of sections, got str",
        make=_params(b"search.budget=0.4\n")),
    # ------------------------------------------------ the params file: YAML that is not plain data (issue 27)
    Bad("params-alias-bomb", "prepare", PARAMS,
        "params.yaml: line 5: its aliases expand to over 10000 values (an alias bomb?); refused before expanding",
        make=_params(billion_laughs().encode())),
    Bad("override-alias-bomb", "prepare", ["-S", BOMB_OVERRIDE],
        "search.x: cannot parse override value '{a: &a [1,1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], c: "
        "&c [*b,*b,*b,*b,*b,*b,*b,*b,'... (182 characters): line 1: its aliases expand to over 10000 values"),
    Bad("params-recursive-alias", "prepare", PARAMS, "params.yaml: line 2: an alias refers to a node that holds it",
        make=_params(b"seed: 0\nsearch: &s {x: *s}\n")),
    Bad("params-binary-value", "prepare", PARAMS,
        "params.yaml: line 3: tracking.experiment: a !!binary value is not a params value",
        make=_params(b"seed: 0\ntracking:\n  experiment: !!binary aGVsbG8=\n")),
    Bad("params-unquoted-date", "prepare", PARAMS,
        "params.yaml: line 2: experiment: 2024-05-01 is read as a YAML date, which is not a params value",
        make=_params(b"seed: 0\nexperiment: 2024-05-01\n")),
    Bad("override-unquoted-date", "prepare", ["-S", "tracking.experiment=2024-05-01"],
        "tracking.experiment: 2024-05-01 is read as a YAML date, which is not a params value (strings, numbers, "
        "booleans, lists and mappings are); quote it ('2024-05-01') for a string"),
    Bad("params-set", "prepare", PARAMS, "params.yaml: line 2: search: a !!set is not a params value",
        make=_params(b"seed: 0\nsearch: !!set {budget}\n")),
    Bad("lookalike-key", "prepare", ["-S", "search.budg\u0435t=0.3"],
        "search.budg\u0435t: unknown key (it has non-ASCII characters: U+0435 CYRILLIC SMALL LETTER IE)"),
    Bad("lookalike-key-zero-width", "prepare", PARAMS,
        "search.budget\u200b: unknown key (it has non-ASCII characters: U+200B ZERO WIDTH SPACE)",
        make=_params("search:\n  budget\u200b: 0.3\n".encode())),
    # ------------------------------------------------ MLflow
    Bad("experiment-empty", "prepare", ["-S", "tracking.experiment="],
        "tracking.experiment: must name an MLflow experiment, got ''"),
    Bad("experiment-blank", "prepare", ["-S", 'tracking.experiment="   "'],
        "tracking.experiment: must name an MLflow experiment, got '   '"),
    Bad("experiment-two-lines", "prepare", ["-S", r'tracking.experiment="a\nb"'],
        "tracking.experiment: must be one line of at most 500 printable characters"),
    Bad("experiment-too-long", "prepare", ["-S", "tracking.experiment=" + "x" * 501],
        "tracking.experiment: must be one line of at most 500 printable characters"),
    # ------------------------------------------------ devices (a machine without CUDA)
    Bad("supernet-device-cuda", "supernet", ["-S", "supernet.device=cuda"],
        "supernet.device: cuda was asked for but no CUDA device is available", **PROJECT, **CUDA_OFF),
    Bad("finetune-device-cuda", "finetune", ["-S", "finetune.device=cuda"],
        "finetune.device: cuda was asked for but no CUDA device is available", **PROJECT, **CUDA_OFF),
    Bad("profile-backend-cuda", "profile", ["-S", "profile.backend=torch-cuda"],
        "profile.backend: torch-cuda was asked for but no CUDA device is available", **PROJECT, **CUDA_OFF),
    # ------------------------------------------------ data
    Bad("data-root-a-file", "prepare", [*DATA_T10K, "-S", f"data.root={{tmp}}/d/{IMAGES}"],
        f"data.root: {{tmp}}/d/{IMAGES} is a file", make=lambda tmp: _idx(tmp)),
    Bad("fixed-blank", "prepare", ["-S", 'model.fixed=[" conv0"]'],
        "model.fixed[0]: must be a dimension name or pattern (`*.stage`) without surrounding spaces, got ' conv0'"),
    Bad("fixed-not-a-list", "prepare", ["-S", "model.fixed=conv0"], "model.fixed: must be a list, got 'conv0'"),
    Bad("data-root-empty", "prepare", ["-S", "data.root="], "data.root: must name the dataset's folder, got ''"),
    Bad("data-root-5000-characters", "prepare", ["-S", "data.root=/" + "d" * 4999],
        "data.root: a path of 5000 bytes is longer than the file system allows (4095), got '/ddd"),
    Bad("data-root-a-name-too-long", "prepare", ["-S", "data.root=data/" + "d" * 300],
        "data.root: a name of 300 bytes in the path is longer than the file system allows (255)"),
    Bad("start-checkpoint-name-too-long", "prepare", ["-S", "search.start_checkpoint=" + "c" * 256 + ".pt"],
        "search.start_checkpoint: a name of 259 bytes in the path is longer than the file system allows (255)"),
    Bad("idx-no-images", "prepare", DATA_T10K, f"{{tmp}}/d/{IMAGES}: holds no images",
        make=lambda tmp: _idx(tmp, struct.pack(">IIII", 2051, 0, 28, 28), struct.pack(">II", 2049, 0))),
    Bad("idx-0x0-images", "prepare", DATA_T10K, f"{{tmp}}/d/{IMAGES}: its images are 0x0 pixels",
        make=lambda tmp: _idx(tmp, struct.pack(">IIII", 2051, 60, 0, 0))),
    Bad("idx-no-labels", "prepare", DATA_T10K, f"{{tmp}}/d/{LABELS}: holds no labels",
        make=lambda tmp: _idx(tmp, labels=struct.pack(">II", 2049, 0))),
    Bad("idx-missing-classes", "prepare", DATA_T10K, f"{{tmp}}/d/{LABELS}: labels cover 3 of the dataset's 10 classes",
        make=lambda tmp: _idx(tmp, n=300, classes=3)),
    Bad("checksums-not-utf8", "prepare", DATA_T10K, "{tmp}/d/SHA256SUMS: not UTF-8 text", make=_sums_not_utf8),
    Bad("checksums-not-hex", "prepare", DATA_T10K, "{tmp}/d/SHA256SUMS:1: not a sha256sum line", make=_sums_not_hex),
    Bad("image-folder-one-class", "prepare", ["-S", "data.name=image-folder", "-S", "data.root={tmp}/f"],
        "{tmp}/f/train: one class folder (cat); a classifier needs at least 2", make=_one_class),
    Bad("prepared-split-truncated", "supernet", [], "{tmp}/a/prepared/train.pt: not a prepared split",
        make=_truncate_split, **PROJECT),
    Bad("prepared-meta-corrupt", "supernet", [], "{tmp}/a/prepared/meta.json: not a prepared-data description",
        make=_corrupt_meta, **PROJECT),
    # ------------------------------------------------ model-level, before building or training the super-network
    Bad("granularity-above-smallest-width", "supernet", ["-S", "model.granularity=64"],
        "model.granularity: 64 is larger than plain_cnn's smallest searchable width (conv0: 16 channels", **PROJECT),
    Bad("fixed-matches-nothing", "supernet", ["-S", 'model.fixed=["conv*", "*.stage"]'],
        "model.fixed[1]: '*.stage' matches no dimension of the model (its dimensions: conv0", **PROJECT),
    Bad("fixed-matches-nothing-profile", "profile", ["-S", "model.fixed=[head]"],
        "model.fixed[0]: 'head' matches no dimension of the model", **PROJECT),
    Bad("granularity-4096-profile", "profile", ["-S", "model.granularity=4096"],
        "model.granularity: 4096 is larger than plain_cnn's smallest searchable width", **PROJECT),
    Bad("width-mult-tiny", "supernet", ["-S", "model.width_mult=0.01"],
        "model.width_mult: 0.01 narrows plain_cnn's smallest searchable width (conv0) to 1 channel(s), below "
        "model.granularity 8", **PROJECT),
    Bad("model-not-importable", "supernet", ["-S", "model.name=nosuch_pkg.module:Net"],
        "model.name: cannot import 'nosuch_pkg.module:Net'", **PROJECT),
    Bad("checkpoint-names-another-model", "search", [],
        f"{{tmp}}/a/supernet/supernet.pt: the super-network checkpoint names model '{FOREIGN_MODEL}', which is "
        f"neither the params' model.name 'plain_cnn' nor a built-in", make=_foreign_model, **PROJECT),
    # ------------------------------------------------ search: budget and start checkpoint
    Bad("absolute-budget-above-base", "search", ["-S", "search.budget_type=absolute", "-S", f"search.budget={10**12}"],
        "search.budget: 1e+12 MACs is at or above the base network's", **PROJECT),
    Bad("start-checkpoint-missing", "search", V1, "search.start_checkpoint: {tmp}/plain.pt not found", **PROJECT),
    Bad("start-checkpoint-text", "search", V1,
        "search.start_checkpoint: {tmp}/plain.pt is not a super-network checkpoint",
        make=_text("plain.pt", b"not a checkpoint\n"), **PROJECT),
    Bad("start-checkpoint-truncated", "search", V1,
        "search.start_checkpoint: {tmp}/plain.pt is not a super-network checkpoint", make=_truncated_checkpoint,
        **PROJECT),
    Bad("start-checkpoint-other-object", "search", V1,
        "search.start_checkpoint: {tmp}/plain.pt is not a super-network checkpoint", make=_not_a_checkpoint,
        **PROJECT),
]

# the tiny preset's model and super-network batches, trained for 0 epochs: built, never trained
PROJECT_ARGS = presets.flags({"model": presets.TINY["model"], "search": {"metric": "macs"},
                              "supernet": {**presets.TINY["supernet"], "epochs": 0}})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A tiny valid Fashion-MNIST-shaped dataset (the good part of every config-level case)."""
    return presets.tiny_data(tmp_path_factory.mktemp("bad-input-data"), train=200, test=50)


@pytest.fixture(scope="module")
def project(data, tmp_path_factory) -> Path:
    """Prepared data and a super-network (plain CNN, 0 epochs): the shared start of model-level cases."""
    root = tmp_path_factory.mktemp("bad-input-project")
    args = ["--params", str(REPO / "params.yaml"), "-S", "data.name=fashion-mnist", "-S", f"data.root={data}",
            *PROJECT_ARGS, *presets.outputs(root)]
    for stage in ("prepare", "supernet"):
        assert main([stage, *args]) == 0
    return root / "a"


def _snapshot(tmp: Path) -> dict[str, tuple[int, int] | None]:
    """Every file under the output folders (size, mtime) and every folder below them (existence). The
    output folders themselves may appear for the project lock, which a stage command takes before it
    reads its inputs; a folder holding nothing but the lock is not an output."""
    return {p.relative_to(tmp).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for name in OUTPUTS if (tmp / name).is_dir()
            for p in (tmp / name).rglob("*") if p.name not in IGNORED}


def test_the_table_holds_at_least_40_kinds():
    assert len({c.kind for c in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input_is_refused_before_work(case: Bad, data, request, tmp_path, capsys, monkeypatch):
    if case.cuda:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if case.project:
        shutil.copytree(request.getfixturevalue("project"), tmp_path / "a")
    if case.make:
        case.make(tmp_path)
    fill = lambda text: text.replace("{tmp}", str(tmp_path)).replace("{data}", str(data))  # noqa: E731
    argv = [case.stage, "--params", str(REPO / "params.yaml"), "-S", "data.name=fashion-mnist",
            "-S", f"data.root={data}", *(PROJECT_ARGS if case.project else []), *map(fill, case.args),
            *[opt for name, flag in zip(OUTPUTS, ("--artifacts", "--metrics", "--plots"))
              for opt in (flag, str(tmp_path / name))]]
    before = _snapshot(tmp_path)

    problems = []
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    except Exception as exc:  # noqa: BLE001 - what the user would see as a traceback
        code = None
        problems.append(f"traceback: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}")
    err = capsys.readouterr().err
    if code is not None and code != 2:
        problems.append(f"exit {code}" + (" (accepted)" if code == 0 else ""))
    if "Traceback" in err:
        problems.append("traceback on stderr")
    lines = err.splitlines()
    if code is not None and code != 0:
        if len(lines) != 1 or not lines[0].startswith("netadapt: error: "):
            problems.append(f"not one 'netadapt: error:' line: {err[:300]!r}")
        elif fill(case.expect) not in lines[0]:
            problems.append(f"message does not name it: {lines[0][:300]!r}")
    after = _snapshot(tmp_path)
    if after != before:
        changed = sorted(set(after.items()) ^ set(before.items()))
        problems.append(f"wrote before refusing: {sorted({k for k, _ in changed})[:5]}")
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("stage", ["search", "finetune"])
def test_a_checkpoint_in_the_artifacts_cannot_run_code(stage, project, data, tmp_path, monkeypatch, capsys):
    """Issue 27: a `supernet.pt` naming `artifacts.supernet.pwn:Net` beside a `pwn.py` ran that file
    (the repository root is on the import path of `python -m`). Now the name is checked against the
    params' `model.name` before anything is imported: exit 2 naming the file, `pwn.py` never runs."""
    shutil.copytree(project, tmp_path / "a")
    _foreign_model(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # the planted module is importable, as in the attack
    argv = [stage, "--params", str(REPO / "params.yaml"), "-S", "data.name=fashion-mnist", "-S",
            f"data.root={data}", *PROJECT_ARGS, *presets.outputs(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path}/a/supernet/supernet.pt: the super-network checkpoint names model" in err
    assert not (tmp_path / "pwned").exists() and "a.supernet.pwn" not in sys.modules


def test_a_stage_start_touches_no_file_of_the_user(data, tmp_path, capsys):
    """Issue 27: `--plots` pointed at a user's folder: a stage's start deleted `.thesis.docx.backup01.tmp`
    and moved `.vim.old` to `vim` (exit 0). They stay as they were; the project's own leftover goes."""
    home = tmp_path / "home"
    users = [home / ".thesis.docx.backup01.tmp", home / ".vim.old" / "vimrc"]
    ours = home / ".fidelity.png.abcd1234.tmp"
    for path in [*users, ours]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
    argv = ["prepare", "--params", str(REPO / "params.yaml"), "-S", "data.name=fashion-mnist", "-S",
            f"data.root={data}", "--artifacts", str(tmp_path / "a"), "--metrics", str(tmp_path / "m"),
            "--plots", str(home)]
    assert main(argv) == 0, capsys.readouterr().err
    assert all(path.read_text() == "mine" for path in users) and not (home / "vim").exists()
    assert not ours.exists()
