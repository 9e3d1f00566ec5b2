"""Read the shipped dashboards' PromQL: every panel target and variable query, and the metric
names each one selects. Shared by the dashboard tests and the Prometheus end-to-end test."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

GRAFANA_DIR = Path(__file__).resolve().parents[1] / "grafana"
DASHBOARD_FILES = ("streamboost-overview.json", "streamboost-cache-and-writes.json")

# The families streamboost agreed to export (COMMON.md's table) with their Prometheus types.
# The dashboards are checked against a real /metrics scrape (``scraped_families``); this list
# only pins that scrape to the contract, so a renamed family fails one test, by name.
CONTRACT_FAMILIES: dict[str, str] = {
    "streamboost_http_requests_total": "counter",
    "streamboost_http_request_duration_seconds": "histogram",
    "streamboost_time_to_first_byte_seconds": "histogram",
    "streamboost_time_to_first_token_seconds": "histogram",
    "streamboost_time_per_output_token_seconds": "histogram",
    "streamboost_stream_duration_seconds": "histogram",
    "streamboost_stream_events_total": "counter",
    "streamboost_stream_writes_total": "counter",
    "streamboost_response_bytes_total": "counter",
    "streamboost_streams_active": "gauge",
    "streamboost_streams_total": "counter",
    "streamboost_phase_duration_seconds": "histogram",
    "streamboost_phase_fallbacks_total": "counter",
    "streamboost_tokens_total": "counter",
    "streamboost_inter_token_gap_seconds": "histogram",
    "streamboost_stream_max_gap_seconds": "histogram",
    "streamboost_websocket_connections_active": "gauge",
    "streamboost_websocket_connections_total": "counter",
    "streamboost_websocket_connection_duration_seconds": "histogram",
    "streamboost_websocket_time_to_first_message_seconds": "histogram",
    "streamboost_websocket_messages_total": "counter",
    "streamboost_websocket_writes_total": "counter",
    "streamboost_cache_requests_total": "counter",
    "streamboost_cache_load_duration_seconds": "histogram",
    "streamboost_deferred_queue_depth": "gauge",
    "streamboost_deferred_items_total": "counter",
    "streamboost_deferred_batch_size": "histogram",
    "streamboost_deferred_write_duration_seconds": "histogram",
    "streamboost_deferred_lag_seconds": "histogram",
}

_KEYWORDS = frozenset(
    {
        *("by", "without", "on", "ignoring", "group_left", "group_right"),
        *("bool", "offset", "or", "and", "unless", "inf", "nan"),
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACED = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()")


@dataclass(frozen=True, slots=True)
class Query:
    dashboard: str
    title: str  # panel title, or "variable <name>"
    expr: str


def load_dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((GRAFANA_DIR / "dashboards" / name).read_bytes())
    return data


def panel_queries(board: dict[str, Any]) -> list[Query]:
    found = []
    for panel in board["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                found.append(Query(board["uid"], nested["title"], target["expr"]))
    return found


def variable_queries(board: dict[str, Any]) -> list[Query]:
    return [
        Query(board["uid"], f"variable {variable['name']}", variable["query"])
        for variable in board["templating"]["list"]
        if variable["type"] == "query"
    ]


def all_queries() -> list[Query]:
    queries: list[Query] = []
    for name in DASHBOARD_FILES:
        board = load_dashboard(name)
        queries += panel_queries(board) + variable_queries(board)
    return queries


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (or a ``label_values(metric, label)``)."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", expr, re.DOTALL)
    if match:
        expr = match.group(1)
    text = _STRING.sub('""', expr)
    # Drop matchers and ranges innermost-first, then grouping label lists.
    while True:
        stripped = _BRACED.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    text = _GROUPING.sub(" ", text)
    names = {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}
    return {name for name in names if not re.fullmatch(r"[\d.e+-]+", name)}


def scraped_families(workdir: Path) -> dict[str, str]:
    """The ``streamboost_*`` families (name to type) that the end-to-end app serves on /metrics.

    The app (tests/e2e_app.py) wraps the example chat backend in StreamBoost and uses a
    cache, phases and a DeferredWriter, so every exporter registers its families.
    """
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from e2e_app import build_app
    from streamboost._cli._loopback import uvicorn_in_thread

    with uvicorn_in_thread(build_app(workdir)) as url:
        response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    families: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name.startswith("streamboost_") and not family.name.endswith("_created"):
            # The parser strips a counter's _total; the series Prometheus stores keep it.
            suffix = "_total" if family.type == "counter" else ""
            families[family.name + suffix] = family.type
    return families


def sample_names(families: dict[str, str]) -> set[str]:
    """The series names Prometheus stores for each family of the given type."""
    names: set[str] = set()
    for family, kind in families.items():
        if kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        else:
            names.add(family)
    return names
