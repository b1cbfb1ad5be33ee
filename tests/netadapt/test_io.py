"""Artifact writes: atomic, and bytes that depend only on content."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from netadapt.io import load_tensors, save_tensors


def test_equal_content_gives_equal_checkpoint_bytes(tmp_path: Path):
    """torch.save names its archive after the file; saving via a random temp name gave new bytes
    for unchanged content, and DVC then re-ran everything downstream."""
    blob = {"state_dict": {"w": torch.arange(6.0).view(2, 3)}, "arch": "{}", "config_digest": "abc"}
    save_tensors(tmp_path / "a.pt", blob)
    save_tensors(tmp_path / "a.pt.again", blob)
    save_tensors(tmp_path / "b.pt", blob)
    first = (tmp_path / "a.pt").read_bytes()
    assert first == (tmp_path / "a.pt.again").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(load_tensors(tmp_path / "b.pt")["state_dict"]["w"], blob["state_dict"]["w"])
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")], "no temp file left behind"


def test_artifacts_get_a_plain_files_mode(tmp_path: Path):
    """Temp files and folders are private (0600/0700); published artifacts are not."""
    from netadapt.io import atomic_dir, write_csv, write_json

    mask = os.umask(0o022)
    os.umask(mask)
    write_json(tmp_path / "m.json", {"a": 1})
    write_csv(tmp_path / "c.csv", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
    assert (tmp_path / "c.csv").read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.25"]
    save_tensors(tmp_path / "t.pt", {"x": torch.zeros(1)})
    with atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("x")
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "c.csv").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "t.pt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask


def test_a_folder_that_takes_no_new_file_is_named_by_the_artifact(tmp_path: Path, monkeypatch):
    """Issue 27 item 10: a read-only metrics folder (EROFS, or EACCES without write permission) refused the
    temp file, and the one-line error named `.search.json.k2j4_x9a.tmp`, a file that never existed; it
    names the artifact being written, for a file and a staging folder alike."""
    import errno
    import tempfile

    import pytest

    from netadapt.io import atomic_dir, write_json

    for code in (errno.EROFS, errno.EACCES):
        def refuse(*args, prefix="", dir=None, **kwargs):
            raise OSError(code, os.strerror(code), os.path.join(dir, f"{prefix}k2j4_x9a.tmp"))

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
        monkeypatch.setattr(tempfile, "mkdtemp", refuse)
        with pytest.raises(OSError) as refused:
            write_json(tmp_path / "m" / "search.json", {"a": 1})
        assert refused.value.errno == code and refused.value.filename == str(tmp_path / "m" / "search.json")
        with pytest.raises(OSError) as refused, atomic_dir(tmp_path / "prepared"):
            pass
        assert refused.value.filename == str(tmp_path / "prepared")
    assert not (tmp_path / "m" / "search.json").exists() and not (tmp_path / "prepared").exists()


def test_clean_stale_removes_only_what_interrupted_writes_left(tmp_path: Path):
    """Temp files and staging folders `.<name>.XXXXXXXX.tmp` and `.<name>.old` folders go; a `.old`
    folder whose original is gone (killed between atomic_dir's two renames) is put back; nothing else
    is touched, and nothing outside the folders given."""
    from netadapt.io import clean_stale
    from netadapt.layout import Paths

    art, met, outside = tmp_path / "artifacts", tmp_path / "metrics", tmp_path / "elsewhere"
    stale = [art / "search" / ".history.json.a1b2_c3d.tmp", met / ".search.json.zz99yy88.tmp",
             art / ".profile.q1w2e3r4.tmp" / "lut.csv", art / ".prepared.old" / "meta.json"]
    kept = [art / "search" / "history.json", art / "search" / "notes.tmp", art / ".stamps" / "s" / "k.json",
            art / ".lock", met / ".x.tmp", art / "prepared" / "meta.json", outside / ".a.json.a1b2c3d4.tmp"]
    for path in stale + kept + [art / ".supernet.old" / "supernet.pt"]:  # no `supernet`: killed mid-swap
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.name)
    touched = clean_stale(Paths(art, met, tmp_path / "plots"))
    assert {p.relative_to(tmp_path).as_posix() for p in touched} == {
        "artifacts/search/.history.json.a1b2_c3d.tmp", "metrics/.search.json.zz99yy88.tmp",
        "artifacts/.profile.q1w2e3r4.tmp", "artifacts/.prepared.old", "artifacts/.supernet.old"}
    assert not [p for p in stale if p.exists()] and not (art / ".profile.q1w2e3r4.tmp").exists()
    assert all(p.exists() for p in kept)
    assert (art / "supernet" / "supernet.pt").read_text() == "supernet.pt", "the last complete version is back"
    assert not (art / ".supernet.old").exists()


def test_clean_stale_never_touches_a_users_files_that_look_alike(tmp_path: Path):
    """Issue 27: with `--plots` (or `--metrics`, `--artifacts`) pointed at a user's folder, a stage's
    start deleted `.thesis.docx.backup01.tmp` and moved `.vim.old` to `vim`. Only the leftovers of the
    project's own names go, in the folders it owns; a user's look-alikes anywhere stay as they were."""
    from netadapt.io import clean_stale
    from netadapt.layout import Paths

    art, met, plots = tmp_path / "artifacts", tmp_path / "metrics", tmp_path / "home"
    users = [plots / ".thesis.docx.backup01.tmp", plots / ".vim.old" / "vimrc", plots / "notes" / ".a.txt.abcd1234.tmp",
             plots / ".cache.abcd1234.tmp" / "x", met / ".report.json.abcd1234.tmp", met / ".lab.old" / "x",
             art / ".mine.abcd1234.tmp", art / ".data.old" / "x", art / "mine" / ".a.json.abcd1234.tmp"]
    ours = [plots / ".search.png.abcd1234.tmp", plots / ".fidelity.csv.k2j4_x9a.tmp",
            plots / "devices" / "phone" / ".search.csv.a1b2c3d4.tmp", met / ".evaluate.json.zz99yy88.tmp",
            met / "devices" / "phone" / ".search.json.zz99yy88.tmp", art / ".finetune.q1w2e3r4.tmp" / "model.pt",
            art / "devices" / "phone" / "search" / ".arch.json.q1w2e3r4.tmp",
            art / ".stamps" / "search" / ".k.json.q1w2e3r4.tmp"]
    for path in users + ours:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.name)
    before = {p: p.read_text() for p in users}
    touched = clean_stale(Paths(art, met, plots))
    assert {p: p.read_text() for p in users if p.exists()} == before, "every file of the user as it was"
    assert not (plots / "vim").exists()
    assert not [p for p in ours if p.exists()]
    assert {p.relative_to(tmp_path) for p in touched} == {
        p.relative_to(tmp_path) if p.name.endswith(".tmp") else p.parent.relative_to(tmp_path) for p in ours}


def test_dvc_never_hashes_leftover_temp_files(tmp_path: Path):
    """The project's .dvcignore keeps temp files and staging folders out of an output's `.dir`."""
    import shutil

    from dvc.repo import Repo

    from tests.conftest import REPO

    repo = Repo.init(str(tmp_path), no_scm=True)
    shutil.copy(REPO / ".dvcignore", tmp_path / ".dvcignore")
    out = tmp_path / "out"
    for name in ("a.json", ".a.json.k2j4x9ab.tmp", ".x.tmp", ".sub.abcd1234.tmp/f", ".sub.old/f", "sub/f"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(name)
    repo.add(str(out))
    listing = json.loads(next((tmp_path / ".dvc" / "cache").rglob("*.dir")).read_text())
    assert sorted(entry["relpath"] for entry in listing) == ["a.json", "sub/f"]
    assert "nfiles: 2" in (tmp_path / "out.dvc").read_text()
    repo.close()
