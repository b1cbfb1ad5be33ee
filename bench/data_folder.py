"""Where the benchmarks find their datasets: a data folder holding each dataset's original files in a
folder of its own (`cifar-10/`, `fashion-mnist/`), given as `--data DIR` or by the `NETADAPT_DATA`
environment variable. Nothing is assumed about where a machine keeps its data.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ENVIRONMENT = "NETADAPT_DATA"
FOLDERS = {"cifar10": "cifar-10", "fashion-mnist": "fashion-mnist"}  # dataset (data.name) -> its folder


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help=f"the folder holding the datasets ({', '.join(f'{f}/' for f in FOLDERS.values())}); "
                             f"default: ${ENVIRONMENT}")


def dataset_root(parser: argparse.ArgumentParser, data: Path | None, dataset: str) -> Path:
    """`<data folder>/<dataset's folder>`, absolute; exits 2 naming `--data` and `NETADAPT_DATA` when
    neither gives the data folder."""
    if data is None and os.environ.get(ENVIRONMENT):
        data = Path(os.environ[ENVIRONMENT])
    if data is None:
        parser.error(f"no data folder: give --data DIR or set {ENVIRONMENT}=DIR, DIR holding {FOLDERS[dataset]}/")
    return (data / FOLDERS[dataset]).resolve()
