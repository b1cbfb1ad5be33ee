"""The documentation stays true: every quoted measurement table equals what `bench/tables.py` renders
from the committed JSON, every relative link (and anchor) resolves, and the README stays a front door."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", REPO / "bench" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def _tables():
    spec = importlib.util.spec_from_file_location("bench_tables", REPO / "bench" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _tables()


def _copy_project(tmp_path: Path) -> Path:
    """The documents and the results they quote, in a scratch root (never edit the real ones)."""
    for doc in tables.DOCUMENTS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / doc, tmp_path / doc)
    (tmp_path / "bench" / "results").mkdir()
    for result in (REPO / "bench" / "results").glob("*.json"):
        shutil.copy(result, tmp_path / "bench" / "results" / result.name)
    return tmp_path


def test_quoted_tables_match_their_json() -> None:
    assert tables.stale(REPO) == [], "run: python bench/tables.py --write"


def test_every_table_is_quoted_once() -> None:
    quoted = [m.group(2) for doc in tables.DOCUMENTS for m in tables.BLOCK.finditer((REPO / doc).read_text())]
    assert sorted(quoted) == sorted(tables.TABLES)
    assert "search_quality" in [m.group(2) for m in tables.BLOCK.finditer((REPO / "README.md").read_text())]


def test_an_edited_figure_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    root = _copy_project(tmp_path)
    readme = root / "bench" / "README.md"
    text = readme.read_text()
    block = next(m for m in tables.BLOCK.finditer(text) if m.group(2) == "supernet_overhead")
    figure = re.search(r"\d+\.\d+", block.group(3).split("\n| plain |")[1])
    start = block.start(3) + block.group(3).index("\n| plain |") + figure.start()
    readme.write_text(text[:start] + "9" + text[start + 1:])
    assert tables.stale(root) == ["bench/README.md: supernet_overhead"]
    monkeypatch.setattr(sys, "argv", ["tables.py", "--check", "--root", str(root)])
    with pytest.raises(SystemExit) as exit_:
        tables.main()
    assert exit_.value.code == 1 and "bench/README.md: supernet_overhead" in capsys.readouterr().err
    readme.write_text(tables.rewrite(readme.read_text(), tables.render(root / "bench" / "results")))
    assert tables.stale(root) == [] and readme.read_text() == text


def test_a_changed_json_figure_is_caught(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    path = root / "bench" / "results" / "latency_reach.json"
    path.write_text(path.read_text().replace('"base_ms": 0.3465945', '"base_ms": 0.4465945', 1))
    assert tables.stale(root) == ["bench/README.md: latency_reach"]


def test_tables_need_only_the_standard_library() -> None:
    """`tables.py` and its table modules (`table_format.py`, `tables_*.py`) import the standard library and each other only."""
    files = [REPO / "bench" / "tables.py", REPO / "bench" / "table_format.py", *(REPO / "bench").glob("tables_*.py")]
    own = {f.stem for f in files}
    assert len(files) > 2
    for path in files:
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert imported and imported <= set(sys.stdlib_module_names) | own, path.name


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE.sub(lambda m: m.group(0)[1:-1], heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen = set(), {}
    for line in FENCE.sub("", path.read_text()).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    text = CODE.sub("", FENCE.sub("", path.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in links(doc):
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            broken.append(target)
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(target)
    assert broken == []


def test_docs_have_links() -> None:
    assert len(links(REPO / "README.md")) >= 5 and len(links(REPO / "docs" / "README.md")) >= 8


def test_readme_is_a_front_door() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
