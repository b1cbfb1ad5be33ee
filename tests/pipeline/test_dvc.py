"""The DVC pipeline in a temporary copy of the repository, with the tiny preset (`presets.PIPELINE`):
`dvc repro` runs every stage with the venv's dvc called by path and no venv on PATH (as after `make
run`, unactivated); a budget change re-runs search, finetune and evaluate only; `dvc exp run -S` works;
`dvc plots show` draws each plot once, with its axes, in a page that needs no network."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tests.presets import PIPELINE as TINY  # the name tests/flows import from here
from tests.test_layout import project_copy, tool_env

STAGES = {"prepare", "profile", "supernet", "search", "finetune", "evaluate"}
PNGS = {"plots/fidelity.png", "plots/search.png", "plots/tradeoff.png"}
DATA_PLOTS = {"supernet_training", "lut_fidelity", "search_trajectory", "finetune_training"}
VENDORED = {"vega", "vega-lite", "vega-embed"}
DVC = str(Path(sys.executable).with_name("dvc"))


def dvc(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([DVC, *args], cwd=repo, env=env or tool_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def bare_env() -> dict[str, str]:
    """The environment of a shell where the venv is not activated: its bin is not on PATH."""
    venv_bin = Path(sys.executable).parent
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if p and Path(p).resolve() != venv_bin.resolve())
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return {**env, "PATH": path, "DVC_NO_ANALYTICS": "1"}


def set_params(repo: Path, **sections) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def commit(repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], cwd=repo, check=True)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> tuple[Path, str]:
    """A fresh clone after `make run`: the tiny preset committed, `.venv` (this interpreter's venv)
    in it, and `dvc repro` run by path with no venv on PATH. Returns the copy and repro's output."""
    repo = project_copy(tmp_path_factory.mktemp("pipeline") / "repo")
    set_params(repo, **TINY)
    commit(repo, "tiny")
    (repo / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    with (repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.venv\n")  # `.venv/` in .gitignore matches a folder, not this link
    return repo, dvc(repo, "repro", env=bare_env())


@pytest.mark.slow
def test_repro_needs_no_venv_on_path(pipeline):
    repo, first = pipeline
    env = bare_env()
    venv_bin = Path(sys.executable).parent.resolve()
    for tool in ("python", "netadapt", "dvc"):
        found = shutil.which(tool, path=env["PATH"])
        assert found is None or Path(found).parent.resolve() != venv_bin, f"{tool} is on PATH from the venv"
    assert ran(first) == STAGES, "every stage's cmd ran (a failing one would stop repro)"
    assert json.loads(dvc(repo, "status", "--json", env=env)) == {}
    assert (repo / "metrics" / "evaluate.json").is_file() and (repo / "plots" / "tradeoff.png").is_file()


@pytest.mark.slow
def test_budget_change_reruns_only_what_it_affects(pipeline):
    repo, _ = pipeline
    arch_before = (repo / "artifacts" / "search" / "arch.json").read_text()
    reached = json.loads((repo / "metrics" / "search.json").read_text())["resource_estimated"]
    base = json.loads((repo / "artifacts" / "search" / "history.json").read_text())["base"]
    tighter = round(0.9 * reached / base, 4)  # must change the result
    set_params(repo, search={"budget": tighter})
    status = json.loads(dvc(repo, "status", "--json"))
    assert set(status) == {"search", "evaluate"}, "search and evaluate's budget check read search.budget"
    second = dvc(repo, "repro")
    assert (repo / "artifacts" / "search" / "arch.json").read_text() != arch_before
    assert ran(second) == {"search", "finetune", "evaluate"}
    metrics = json.loads((repo / "artifacts" / "reports" / "search.json").read_text())  # every metric
    assert metrics["budget_fraction"] == pytest.approx(tighter) and metrics["reused_iterations"] >= 1

    commit(repo, "tighter")
    looser = round((1 + tighter) / 2, 4)
    out = dvc(repo, "exp", "run", "-S", f"search.budget={looser}")
    assert ran(out) == {"search", "finetune", "evaluate"}
    assert json.loads((repo / "artifacts" / "reports" / "search.json").read_text())["budget_fraction"] == \
        pytest.approx(looser)


def fields(node, axis: str) -> set[str]:
    """The fields a Vega-Lite spec encodes on `axis`, in any layer."""
    found = set()
    if isinstance(node, dict):
        encoding = node.get("encoding")
        if isinstance(encoding, dict) and isinstance(encoding.get(axis), dict) and encoding[axis].get("field"):
            found.add(encoding[axis]["field"])
        for value in node.values():
            found |= fields(value, axis)
    elif isinstance(node, list):
        for value in node:
            found |= fields(value, axis)
    return found


@pytest.mark.slow
def test_plots_declare_each_figure_once_with_its_axes(pipeline):
    repo, _ = pipeline
    shown = json.loads(dvc(repo, "plots", "show", "--json"))["data"]
    assert set(shown) == DATA_PLOTS | PNGS, "no stage-level plot with default axes, no CSV twice"
    for name in PNGS:
        assert [entry["type"] for entry in shown[name]] == ["image"]
    for name in DATA_PLOTS:
        (entry,) = shown[name]
        spec = entry["content"]
        xs, ys = fields(spec, "x"), fields(spec, "y")
        assert xs and ys and "step" not in xs, f"{name}: x {xs}, y {ys}"
        rows = spec["data"]["values"]
        assert rows and all(row.get(f) not in (None, "") for row in rows for f in xs | ys), name
        assert spec["title"]["text"] != name and spec["encoding"]["x"].get("title"), f"{name}: no titles"


class Page(HTMLParser):
    """The <script> and <img> tags of a page, with each inline script's text."""

    def __init__(self, text: str):
        super().__init__()
        self.scripts: list[dict] = []
        self.images: list[str] = []
        self.in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append({**dict(attrs), "text": ""})
            self.in_script = True
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data):
        if self.in_script:
            self.scripts[-1]["text"] += data


@pytest.mark.slow
def test_plots_page_loads_nothing_from_the_network(pipeline, tmp_path: Path):
    repo, _ = pipeline
    assert "dvc plots show --html-template plots_template/offline.html" in (repo / "Makefile").read_text()
    for args in (["plots", "show"], ["plots", "show", "--html-template", "plots_template/offline.html"]):
        out = tmp_path / str(len(args))
        dvc(repo, *args, "-o", str(out))  # bare `dvc plots show` too: .dvc/config names the template
        page = Page((out / "index.html").read_text(encoding="utf-8"))
        assert [s["src"] for s in page.scripts if "src" in s] == [], "every script is inline"
        vendored = {s["data-package"]: s for s in page.scripts if "data-package" in s}
        assert set(vendored) == VENDORED
        for name, script in vendored.items():  # the npm build, byte for byte, as build.py recorded it
            assert hashlib.sha256(script["text"].encode("utf-8")).hexdigest() == script["data-sha256"], name
        assert sum("vegaEmbed(" in s["text"] for s in page.scripts) == len(DATA_PLOTS)
        assert sorted(page.images) == sorted(f"static/workspace_{p.replace('/', '_')}" for p in PNGS)
        assert not re.search(r"""(src|href)\s*=\s*["']https?://""", (out / "index.html").read_text("utf-8"))


def distinct_colours(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24))


@pytest.mark.slow
def test_plots_page_draws_its_charts_offline(pipeline, tmp_path: Path):
    """Headless Chromium (no network here) renders the Vega charts alone: a page whose scripts did
    not load is one flat colour."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    repo, _ = pipeline
    dvc(repo, "plots", "show", *sorted(DATA_PLOTS), "-o", str(tmp_path / "page"))
    page = tmp_path / "page" / "index.html"
    unloaded = tmp_path / "page" / "unloaded.html"  # the control: the same page, vendored scripts removed
    unloaded.write_text(re.sub(r"<script data-package=.*?</script>", "", page.read_text("utf-8"), flags=re.S),
                        encoding="utf-8")
    colours = {}
    for html in (page, unloaded):
        shot = html.with_suffix(".png")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1200,900", "--virtual-time-budget=10000", f"--screenshot={shot}",
                        html.as_uri()], capture_output=True, timeout=120, check=True)
        colours[html.name] = distinct_colours(shot)
    assert colours["unloaded.html"] <= 3, colours
    assert colours["index.html"] > 100, colours


# (the phone's own table, calibrated on its own network timings; its units, timed as the host's, come
# from the host's unit cache: a short test)
DEVICES = {"phone": {"budget": 0.8, "profile": {"network_repeats": 4}}, "box": {"budget": 0.6, "profile": {}}}
DEVICE_STAGES = ("profile", "search", "finetune", "evaluate")


@pytest.mark.slow
def test_two_devices_from_one_supernet_and_a_budget_change_reruns_only_that_device(pipeline):
    """`devices` in params.yaml adds a profile, search, finetune and evaluate per device (dvc.yaml's
    foreach stages) from the one super-network, leaving the plain pipeline's stages alone; one
    device's budget re-runs only that device's search, finetune and evaluate."""
    repo, _ = pipeline
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["devices"] = DEVICES
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = {f"device-{stage}@{name}" for name in DEVICES for stage in DEVICE_STAGES}
    assert set(json.loads(dvc(repo, "status", "--json"))) == stages, "the plain pipeline is up to date"
    assert ran(dvc(repo, "repro")) == stages
    for name, device in DEVICES.items():
        own = repo / "artifacts" / "devices" / name
        for path in ("profile/lut.csv", "profile/lut.json", "search/arch.json", "finetune/model.pt",
                     "finetune/model.onnx"):
            assert (own / path).is_file(), (name, path)
        profiled = json.loads((own / "reports" / "profile.json").read_text())
        assert profiled["units_from_cache"] == profiled["entries"], "units timed as the host's: from its cache"
        assert (json.loads((own / "profile" / "lut.json").read_text())["context"]["backend"]
                == params["profile"]["backend"] == TINY["profile"]["backend"]), "the profile section's backend"
        for stage in DEVICE_STAGES:
            assert (repo / "metrics" / "devices" / name / f"{stage}.json").is_file(), (name, stage)
        assert (repo / "plots" / "devices" / name / "tradeoff.png").is_file()
        search = json.loads((own / "reports" / "search.json").read_text())
        assert search["budget_fraction"] == pytest.approx(device["budget"])
        assert 0 < search["resource_estimated"] <= search["budget"] < search["base_resource"], (name, search)
        evaluated = json.loads((own / "reports" / "evaluate.json").read_text())
        # the repository's Fashion-MNIST sample, one epoch each: well above chance (0.1)
        assert evaluated["test_acc"] >= 0.4 and evaluated["budget_met"] is True, (name, evaluated)
    assert json.loads(dvc(repo, "status", "--json")) == {}

    box_model = (repo / "artifacts" / "devices" / "box" / "finetune" / "model.pt").read_bytes()
    search = json.loads((repo / "artifacts" / "devices" / "phone" / "reports" / "search.json").read_text())
    tighter = round(0.9 * search["resource_estimated"] / search["base_resource"], 4)
    params["devices"]["phone"]["budget"] = tighter
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert set(json.loads(dvc(repo, "status", "--json"))) == {"device-search@phone", "device-evaluate@phone"}
    assert ran(dvc(repo, "repro")) == {"device-search@phone", "device-finetune@phone", "device-evaluate@phone"}
    phone = json.loads((repo / "artifacts" / "devices" / "phone" / "reports" / "search.json").read_text())
    assert phone["budget_fraction"] == pytest.approx(tighter) and phone["reused_iterations"] >= 1
    assert (repo / "artifacts" / "devices" / "box" / "finetune" / "model.pt").read_bytes() == box_model


def test_every_stage_that_builds_the_model_depends_on_the_model_folder():
    """`${model.path}` (the user's model code) is a dep of `layout.MODEL_STAGES` and their device stages."""
    from netadapt.layout import DEVICE_STAGES as PER_DEVICE, MODEL_STAGES
    from tests.conftest import REPO

    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    reads = {name for name, stage in spec.items() if "${model.path}" in stage.get("do", stage)["deps"]}
    assert reads == set(MODEL_STAGES) | {f"device-{s}" for s in PER_DEVICE if s in MODEL_STAGES}


@pytest.mark.slow
def test_editing_the_users_model_file_makes_the_supernet_stage_changed(tmp_path: Path):
    """No run needed: the supernet stage's outputs are faked and committed, then the user edits the
    model module in `model.path`: `dvc status` reports the supernet stage changed, by that file."""
    repo = project_copy(tmp_path / "repo")
    (repo / "models" / "mymodels.py").write_text("class MyNet: width = 16\n")
    set_params(repo, model={"name": "mymodels:MyNet"})
    for out in ("artifacts/prepared/meta.json", "artifacts/supernet/supernet.pt", "plots/supernet.csv",
                "artifacts/reports/supernet.json", "metrics/supernet.json"):
        (repo / out).parent.mkdir(parents=True, exist_ok=True)
        (repo / out).write_text("{}\n")
    dvc(repo, "commit", "-f", "supernet")
    assert "supernet" not in json.loads(dvc(repo, "status", "--json"))
    (repo / "models" / "mymodels.py").write_text("class MyNet: width = 32\n")
    changed = json.loads(dvc(repo, "status", "--json"))["supernet"]
    assert {"changed deps": {"models": "modified"}} in changed, changed
