"""Every artifact a stage reads is checked: a damaged one is one error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netadapt.arch import ModelSpec
from netadapt.checkpoints import load_network, load_supernet, save_network, save_supernet
from netadapt.errors import NetAdaptError
from netadapt.models import build_supernet, extract
from netadapt.resources.lookup_table import LatencyTable, TableError
from netadapt.resources.enumeration import enumerate_layers
from tests.netadapt.resources.test_lookup_table import synthetic_table

SPEC = ModelSpec("plain_cnn", (1, 8, 8), 3)


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero":
        path.write_bytes(b"\0" * len(data))
    elif how == "garble":  # tensor bytes changed in place: torch.load alone reads them without a word
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0x5A for b in data[middle:middle + 16]) + data[middle + 16:])
    elif how == "text":
        path.write_text("not a checkpoint\n")
    elif how == "foreign":  # a valid torch file of something else
        torch.save({"weights": torch.zeros(3)}, path)
    elif how == "wrong_shapes":  # a valid checkpoint whose weights do not fit its architecture
        blob = torch.load(path, weights_only=True)
        name = next(k for k, v in blob["state_dict"].items() if v.dim() == 4)
        blob["state_dict"][name] = torch.zeros(1, 1, 1, 1)
        torch.save(blob, path)
    elif how == "bad_arch":
        blob = torch.load(path, weights_only=True)
        blob["arch"] = "{not json"
        torch.save(blob, path)


KINDS = ["truncate", "zero", "garble", "text", "foreign", "wrong_shapes", "bad_arch"]


@pytest.mark.parametrize("how", KINDS)
def test_a_damaged_super_network_checkpoint_names_the_file(tmp_path: Path, how: str):
    path = tmp_path / "supernet.pt"
    save_supernet(path, build_supernet(SPEC), "digest")
    damage(path, how)
    with pytest.raises(NetAdaptError, match=f"^{path}: "):
        load_supernet(path)


@pytest.mark.parametrize("how", KINDS)
def test_a_damaged_final_model_names_the_file(tmp_path: Path, how: str):
    supernet = build_supernet(SPEC)
    arch = supernet.space()
    path = tmp_path / "model.pt"
    save_network(path, extract(supernet, arch), arch, "digest")
    damage(path, how)
    with pytest.raises(NetAdaptError, match=f"^{path}: "):
        load_network(path)


@pytest.mark.parametrize("value", ["nan", "-1.0", "inf", "fast"])
def test_a_latency_table_with_a_value_that_is_not_a_latency_names_the_file_and_line(tmp_path: Path, value: str):
    """A NaN once let the search 'meet' the budget with a network over it, exit 0."""
    model = build_supernet(SPEC)
    synthetic_table(enumerate_layers(model)).save(tmp_path / "lut.csv")
    lines = (tmp_path / "lut.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")
    row[header.index("latency_ms")] = value
    lines[3] = ",".join(row)
    (tmp_path / "lut.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(TableError, match=f"^{tmp_path / 'lut.csv'}: line 4: latency_ms"):
        LatencyTable.load(tmp_path / "lut.csv")


@pytest.mark.parametrize("content", ["{not json", "{}", '{"context": {}, "constant_ms": 0}',
                                     '{"context": 1, "constant_ms": "x"}'])
def test_a_damaged_table_description_names_the_file(tmp_path: Path, content: str):
    synthetic_table(enumerate_layers(build_supernet(SPEC))).save(tmp_path / "lut.csv")
    (tmp_path / "lut.json").write_text(content)
    with pytest.raises(TableError, match=f"^{tmp_path / 'lut.json'}: "):
        LatencyTable.load(tmp_path / "lut.csv")
