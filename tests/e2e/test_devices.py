"""A named device's stages through the CLI: an unknown device is refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from netadapt_flows.cli import main
from tests.conftest import REPO


def test_a_stage_for_an_unknown_device_fails_before_any_work(tmp_path: Path, capsys):
    folders = ["--artifacts", str(tmp_path / "a"), "--metrics", str(tmp_path / "m"), "--plots", str(tmp_path / "p")]
    assert main(["search", "--params", str(REPO / "params.yaml"), "--device", "tablet", *folders]) == 2
    assert capsys.readouterr().err.strip() == ("netadapt: error: devices.tablet: no such device in the params "
                                               "(known: none: devices is empty)")
    assert not (tmp_path / "a").exists()
    with pytest.raises(SystemExit):  # the shared stages run once for every device
        main(["supernet", "--device", "phone", *folders])
