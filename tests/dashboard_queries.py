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

# The families streamboost exports (COMMON.md's table) with their Prometheus types. The
# end-to-end test checks the real /metrics scrape; this list is the fallback when the exporters
# are not importable and the coverage reference for the dashboards.
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


def sample_names(families: dict[str, str]) -> set[str]:
    """The series names Prometheus stores for each family of the given type."""
    names: set[str] = set()
    for family, kind in families.items():
        if kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        else:
            names.add(family)
    return names
