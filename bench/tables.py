"""The measurement tables quoted in README.md and bench/README.md, rendered from bench/results/*.json.

A quoted table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; it is a settings
caption taken from the JSON followed by the markdown table. Figures are never typed by hand: edit
the JSON (by re-running the benchmark) and rewrite the blocks.

    python bench/tables.py            # print every table
    python bench/tables.py --write    # rewrite the blocks in README.md and bench/README.md
    python bench/tables.py --check    # exit 1 naming each quoted table that differs from its JSON

Standard library only (json), so the check is fast and needs no torch.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

# Each benchmark's tables live in a module beside this file, found also when this file is loaded by path
# (as the tests do, reading CONVERGED and the tables' functions from here).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables_any_model import any_model  # noqa: E402
from tables_search import (CONVERGED, search_quality, search_quality_converged, search_quality_effort,  # noqa: E402, F401
                           search_quality_full, search_quality_paired, search_quality_time, search_space)
from tables_supernet import (candidates_throughput, data_rss, latency_reach, mcd_moves, rank_correlation,  # noqa: E402
                             supernet_overhead, supernet_quality, supernet_variants)

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "bench/README.md")
BLOCK = re.compile(r"(<!-- table:([a-z0-9_]+) -->\n)(.*?)(<!-- /table:\2 -->)", re.S)


TABLES: dict[str, Callable[[Path], str]] = {
    "search_quality": search_quality,
    "search_quality_cifar10": lambda r: search_quality_full(r, "cifar10"),
    "search_quality_fashion_mnist": lambda r: search_quality_full(r, "fashion-mnist"),
    "search_quality_paired": search_quality_paired,
    "search_quality_effort": search_quality_effort,
    "search_quality_converged": search_quality_converged,
    "search_quality_time": search_quality_time,
    "supernet_overhead": supernet_overhead,
    "supernet_quality": supernet_quality,
    "supernet_quality_weighting": lambda r: supernet_variants(r, "supernet_quality_mobilenet_v2_weighting.json", False,
                                                               timing=False),
    "supernet_quality_augment": lambda r: supernet_variants(r, "supernet_quality_mobilenet_v2_augment.json", True),
    "supernet_overhead_onepass": lambda r: supernet_overhead(r, "supernet_overhead_mobilenet_v2_onepass.json"),
    "supernet_overhead_onepass_candidate": lambda r: supernet_overhead(
        r, "supernet_overhead_mobilenet_v2_onepass_candidate.json"),
    # one-pass variants: epoch times left out (measured under heavy sharing; supernet_overhead_onepass has the cost)
    "supernet_quality_onepass_screen": lambda r: supernet_variants(
        r, "supernet_quality_plain_cnn_onepass_screen.json", False, timing=False),
    "supernet_quality_onepass": lambda r: supernet_variants(r, "supernet_quality_plain_cnn_onepass.json", False,
                                                            timing=False),
    "supernet_quality_onepass_mobilenet": lambda r: supernet_variants(
        r, "supernet_quality_mobilenet_v2_onepass.json", False, timing=False),
    "supernet_quality_onepass_mobilenet_seeds": lambda r: supernet_variants(
        r, "supernet_quality_mobilenet_v2_onepass_seeds.json", False, timing=False),
    "latency_reach": latency_reach,
    "data_rss": data_rss,
    "candidates_throughput": candidates_throughput,
    "mcd_moves": mcd_moves,
    "any_model": any_model,
    "rank_correlation": rank_correlation,
    "search_space": search_space,
}


def render(results: Path) -> dict[str, str]:
    return {name: make(results) for name, make in TABLES.items()}


def rewrite(text: str, tables: dict[str, str]) -> str:
    """The document with every quoted block replaced by its rendering (an unknown name is an error)."""
    def fill(m: re.Match) -> str:
        if m.group(2) not in tables:
            raise KeyError(f"unknown table {m.group(2)!r}")
        return f"{m.group(1)}{tables[m.group(2)]}\n{m.group(4)}"
    return BLOCK.sub(fill, text)


def stale(root: Path) -> list[str]:
    """`document: table` for every quoted table under `root` that differs from its JSON's rendering."""
    tables = render(root / "bench" / "results")
    found = []
    for doc in DOCUMENTS:
        for m in BLOCK.finditer((root / doc).read_text()):
            if tables.get(m.group(2)) != m.group(3).rstrip("\n"):
                found.append(f"{doc}: {m.group(2)}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the quoted tables in the documents")
    action.add_argument("--check", action="store_true", help="exit 1 if a quoted table differs from its JSON")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository root (documents and bench/results)")
    args = parser.parse_args()
    if args.check:
        differ = stale(args.root)
        for name in differ:
            print(f"stale table, run bench/tables.py --write: {name}", file=sys.stderr)
        sys.exit(1 if differ else 0)
    tables = render(args.root / "bench" / "results")
    if args.write:
        for doc in DOCUMENTS:
            path = args.root / doc
            text = path.read_text()
            if (new := rewrite(text, tables)) != text:
                path.write_text(new)
                print(f"wrote {doc}")
        return
    for name, text in tables.items():
        print(f"<!-- table:{name} -->\n{text}\n<!-- /table:{name} -->\n")


if __name__ == "__main__":
    main()
