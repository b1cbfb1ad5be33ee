"""Stage keys cover the user's model code: editing the module `model.name` names changes the key of
every stage that builds the model (`layout.MODEL_STAGES`), and of those only; the search identity
(which keys a search history's scores) and the super-network's progress key (its checkpoint's
provenance, hence a candidate's Prefect key) change with it."""

from __future__ import annotations

from pathlib import Path

from netadapt.config import parse_config
from netadapt.evaluation import search_identity
from netadapt.layout import MODEL_STAGES, STAGES, Paths
from netadapt.stages import stage_progress
from netadapt.stamps import stage_key


def keys(cfg, p: Paths) -> dict[str, str]:
    return {stage: stage_key(stage, cfg, p) for stage in STAGES}


def test_editing_the_model_file_changes_the_keys_of_the_stages_that_build_it(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    module = tmp_path / "mine" / "stampnets.py"
    module.write_text("class Net: width = 16\n")
    cfg = parse_config({"model": {"name": "stampnets:Net", "path": "mine"}})
    p = Paths(tmp_path / "artifacts", tmp_path / "metrics", tmp_path / "plots")
    before, identity = keys(cfg, p), search_identity(cfg, p)
    progress = stage_progress("supernet", cfg, p, []).key  # (also the super-network checkpoint's provenance)
    assert keys(cfg, p) == before, "deterministic"
    module.write_text("class Net: width = 32\n")  # the user doubles a width
    after = keys(cfg, p)
    assert {s for s in STAGES if after[s] != before[s]} == set(MODEL_STAGES) == \
        {"profile", "supernet", "search", "finetune", "evaluate"}
    assert search_identity(cfg, p) != identity
    assert stage_progress("supernet", cfg, p, []).key != progress


def test_a_builtin_models_keys_ignore_the_model_folder(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    cfg = parse_config({})
    p = Paths(tmp_path / "artifacts", tmp_path / "metrics", tmp_path / "plots")
    before = keys(cfg, p)
    (tmp_path / "models" / "mine.py").write_text("class Net: pass\n")
    assert keys(cfg, p) == before
