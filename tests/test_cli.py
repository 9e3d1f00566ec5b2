"""``streamboost dashboards export DIR``: writes what a user mounts into Grafana and Prometheus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamboost._cli import main


def test_dashboards_export_writes_then_refuses_then_overwrites_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "grafana"
    assert main(["dashboards", "export", str(dest)]) == 0
    written = capsys.readouterr().out.split()
    assert {Path(p).relative_to(dest).parts[0] for p in written} == {
        "dashboards",
        "provisioning",
        "prometheus",
    }
    overview = json.loads((dest / "dashboards" / "streamboost-overview.json").read_text())
    assert overview["uid"] and overview["panels"]

    assert main(["dashboards", "export", str(dest)]) == 2
    assert "--force" in capsys.readouterr().err

    assert main(["dashboards", "export", str(dest), "--force"]) == 0
    assert capsys.readouterr().out.split() == written
