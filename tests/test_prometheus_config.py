"""The shipped Prometheus scrape config and alert rules pass promtool, and each alert fires on
its bad case and stays quiet otherwise (promtool's rule unit tests in tests/promtool/)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.needs import tool

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "grafana" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    return tool("promtool", ".ci/prepare (Debian: prometheus)")


def run(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    output = run(promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert "SUCCESS: 4 rules found" in output


def test_scrape_config_passes_promtool_check(promtool: str) -> None:
    output = run(promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert "is valid prometheus config file syntax" in output


def test_each_alert_fires_on_its_bad_case(promtool: str) -> None:
    output = run(promtool, "test", "rules", str(REPO / "tests" / "promtool" / "alerts_test.yml"))
    assert "SUCCESS" in output


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    # The checks above mean something only if promtool fails on a bad expression.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n- name: x\n  rules:\n  - alert: X\n    expr: sum by (route (rate(x[5m]))\n"
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
