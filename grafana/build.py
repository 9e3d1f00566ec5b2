"""Generate the Grafana dashboards in grafana/dashboards/ with grafana-foundation-sdk.

Run ``uv run python grafana/build.py`` after changing a panel, and commit the JSON it writes.
The SDK is a dev dependency only: users get the JSON files, never this script's imports.
tests/test_dashboards.py regenerates the JSON and fails when the committed files differ or a
query names a metric streamboost does not export.

Every query filters on the ``job`` and ``instance`` variables (and ``route`` where the metric
has it) and takes its datasource from the ``datasource`` variable. A datasource variable, not
``__inputs``/``${DS_PROMETHEUS}``, lets one file serve both UI import and file provisioning,
which does not substitute ``__inputs`` (grafana/grafana#10786).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

# The SDK nudges towards dashboard v2, which needs Grafana 12's new API and cannot be
# UI-imported or file-provisioned the classic way; the classic model is what we ship.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
    from grafana_foundation_sdk.builders import common as common_builders
    from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
    from grafana_foundation_sdk.cog.builder import Builder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as models

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"

DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["streamboost"]
# Two-thirds of a row for time series, a third for their companion.
WIDE, THIRD, HALF, HEIGHT = 16, 8, 12, 8

# Label matchers every query carries; cache and deferred metrics have no route label.
SEL = 'job=~"$job", instance=~"$instance"'
ROUTE_SEL = SEL + ', route=~"$route"'
RATE = "[$__rate_interval]"


def rate(metric: str, by: str, sel: str, extra: str = "") -> str:
    """``sum by (by) (rate(metric{sel, extra}[$__rate_interval]))``."""
    matchers = f"{sel}, {extra}" if extra else sel
    return f"sum by ({by}) (rate({metric}{{{matchers}}}{RATE}))"


def quantile(q: float, histogram: str, by: str, sel: str) -> str:
    """The q-quantile of a histogram family from its ``_bucket`` series, kept per ``by``."""
    inner = rate(f"{histogram}_bucket", f"le, {by}", sel)
    return f"histogram_quantile({q}, {inner})"


def mean(histogram: str, by: str, sel: str) -> str:
    """Mean observation: rate of ``_sum`` over rate of ``_count``."""
    return f"{rate(f'{histogram}_sum', by, sel)} / {rate(f'{histogram}_count', by, sel)}"


# A panel query: (PromQL, legend). Ref ids A, B, C... follow the order.
Q = tuple[str, str]


def target(ref: str, query: Q) -> prometheus.Dataquery:
    expr, legend = query
    return (
        prometheus.Dataquery()
        .ref_id(ref)
        .datasource(DATASOURCE)
        .expr(expr)
        .legend_format(legend)
        .range()
    )


def percentiles(
    histogram: str, by: str, sel: str, qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> list[Q]:
    return [(quantile(q, histogram, by, sel), f"p{int(q * 100)} {{{{{by}}}}}") for q in qs]


def series(
    title: str,
    description: str,
    unit: str,
    queries: list[Q],
    *,
    width: int = WIDE,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(HEIGHT)
        .fill_opacity(40 if stacked else 10)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(target(ref, query))
    return panel


def single(title: str, description: str, unit: str, query: Q, *, width: int = THIRD) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(HEIGHT)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(target("A", query).instant())
    )


def query_variable(name: str, query: str) -> dashboard.QueryVariable:
    """A multi-select label variable whose All matches everything (``.*``)."""
    return (
        dashboard.QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(query)
        .definition(query)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text="All", value="$__all"))
    )


def variables(*, route: bool, extra: list[dashboard.QueryVariable]) -> list[Builder[Any]]:
    """Datasource, job and instance (and route) variables; multi-select with an All of ``.*``."""

    found: list[Builder[Any]] = [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        query_variable("job", "label_values(streamboost_http_requests_total, job)"),
        query_variable(
            "instance", 'label_values(streamboost_http_requests_total{job=~"$job"}, instance)'
        ),
    ]
    if route:
        found.append(
            query_variable(
                "route",
                f"label_values(streamboost_http_requests_total{{{SEL}}}, route)",
            )
        )
    found.extend(extra)
    return found


def new_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .time("now-30m", "now")
        .refresh("30s")
        .timezone("browser")
    )


# Phases recorded by streamboost itself: ``queue`` (admission) and the upstream client's
# ``model`` and ``<phase>_first_byte`` (the latter lies inside its call, so it is never summed).
QUEUE_PHASE = 'phase="queue"'
MODEL_PHASE = 'phase="model"'
BEFORE_MODEL = 'phase!~"queue|model|.+_first_byte"'
NOT_FIRST_BYTE = 'phase!~".+_first_byte"'


def ttft_split(sel: str) -> list[Q]:
    """Mean time to first token per stream as queue + phases before the model + the model +
    the rest: each phase's rate of seconds over the rate of streams with a first token, so
    the four add up to the mean TTFT (0 for a part nothing recorded)."""
    streams = f"sum(rate(streamboost_time_to_first_token_seconds_count{{{sel}}}{RATE}))"
    ttft = f"sum(rate(streamboost_time_to_first_token_seconds_sum{{{sel}}}{RATE}))"

    def spent(matcher: str) -> str:
        seconds = f"sum(rate(streamboost_phase_duration_seconds_sum{{{sel}, {matcher}}}{RATE}))"
        return f"({seconds} or {streams} * 0)"

    rest = f"clamp_min(({ttft} - {spent(NOT_FIRST_BYTE)}) / {streams}, 0)"
    return [
        (f"{spent(QUEUE_PHASE)} / {streams}", "queue"),
        (f"{spent(BEFORE_MODEL)} / {streams}", "phases before the model"),
        (f"{spent(MODEL_PHASE)} / {streams}", "model"),
        (rest, "rest"),
    ]


def overview() -> dashboard.Dashboard:
    board = new_dashboard(
        "streamboost-overview",
        "streamboost / Overview",
        "Traffic, time to first token and stream health of apps wrapped in StreamBoost.",
    )
    ws_var = query_variable(
        "ws_route", f"label_values(streamboost_websocket_connections_total{{{SEL}}}, route)"
    ).label("WebSocket route")
    for variable in variables(route=True, extra=[ws_var]):
        board = board.with_variable(variable)
    sel = ROUTE_SEL
    ws_sel = SEL + ', route=~"$ws_route"'
    ws = "streamboost_websocket"
    http = "streamboost_http_requests_total"
    phases = "streamboost_phase_duration_seconds"
    ttft = "streamboost_time_to_first_token_seconds"
    fallbacks = (
        rate("streamboost_phase_fallbacks_total", "phase, reason", sel)
        + f" or {rate(f'{phases}_count', 'phase', sel)} * 0"
    )
    ratio = " / ".join(
        f"sum(increase(streamboost_stream_{kind}_total{{{sel}}}[$__range]))"
        for kind in ("events", "writes")
    )
    rows: list[tuple[str, list[Builder[Any]]]] = [
        (
            "Traffic",
            [
                series(
                    "Requests per second",
                    "HTTP responses per second by route and status.",
                    "reqps",
                    [(rate(http, "route, status", sel), "{{route}} {{status}}")],
                ),
                series(
                    "Error responses per second",
                    "4xx and 5xx responses per second by route and status.",
                    "reqps",
                    [
                        (
                            rate(http, "route, status", sel, 'status=~"[45].."'),
                            "{{route}} {{status}}",
                        )
                    ],
                    width=THIRD,
                ),
                series(
                    "Request duration",
                    "Request start to end of the response body, p50, p95 and p99.",
                    "s",
                    percentiles("streamboost_http_request_duration_seconds", "route", sel),
                ),
                series(
                    "Response bytes per second",
                    "Body bytes sent to clients.",
                    "Bps",
                    [(rate("streamboost_response_bytes_total", "route", sel), "{{route}}")],
                    width=THIRD,
                ),
            ],
        ),
        (
            "Time to first token",
            [
                series(
                    "Time to first token",
                    "Request start to the first content event (not a comment or ping), "
                    "from the histogram buckets: p50, p95 and p99 per route.",
                    "s",
                    percentiles("streamboost_time_to_first_token_seconds", "route", sel),
                ),
                series(
                    "Time to first byte",
                    "Request start to the first body byte; a gap to TTFT means the app sends "
                    "metadata or pings before the first token.",
                    "s",
                    percentiles(
                        "streamboost_time_to_first_byte_seconds", "route", sel, (0.5, 0.95)
                    ),
                    width=THIRD,
                ),
                series(
                    "Phases before the first token",
                    "Mean time of each phase (phase() / gather_phases()) per request, stacked. "
                    "Phases run by gather_phases overlap, so the stack can exceed the wall time; "
                    "model_first_byte (request to the provider's headers) lies inside model.",
                    "s",
                    [(mean(phases, "phase", sel), "{{phase}}")],
                    stacked=True,
                ),
                series(
                    "Phase fallbacks per second",
                    "Phases that timed out or failed and used their fallback (0 when none).",
                    "ops",
                    [(fallbacks, "{{phase}} {{reason}}")],
                    width=THIRD,
                ),
                series(
                    "Time to first token, split",
                    "Mean time to first token per stream, stacked: waiting for admission "
                    "(phase queue), the phases before the model, the model (phase model: "
                    "upstream_client() or instrument_upstream(), request sent to the "
                    "provider's first token) and the rest (the app's own work and the first "
                    "write). Phases that overlap (gather_phases) or run in responses "
                    "without a token make the parts before the rest too large; the rest "
                    "never goes below 0.",
                    "s",
                    ttft_split(sel),
                    stacked=True,
                ),
                series(
                    "Model calls per stream",
                    "Calls to the model provider (phase model) per stream with a first "
                    "token: above 1 means retries or several calls per answer (0 when the "
                    "app does not time its model calls).",
                    "none",
                    [
                        (
                            f"({rate(f'{phases}_count', 'route', sel, MODEL_PHASE)}"
                            f" or {rate(f'{ttft}_count', 'route', sel)} * 0)"
                            f" / {rate(f'{ttft}_count', 'route', sel)}",
                            "{{route}}",
                        )
                    ],
                    width=THIRD,
                ),
            ],
        ),
        (
            "Streams",
            [
                series(
                    "Time per output token",
                    "Mean gap between content events after the first, per stream: p50, p95, p99.",
                    "s",
                    percentiles("streamboost_time_per_output_token_seconds", "route", sel),
                ),
                series(
                    "Active streams",
                    "Streams in flight now.",
                    "short",
                    [(f"sum by (route) (streamboost_streams_active{{{sel}}})", "{{route}}")],
                    width=THIRD,
                ),
                series(
                    "Stream duration",
                    "Request start to the last body chunk: p50, p95 and p99.",
                    "s",
                    percentiles("streamboost_stream_duration_seconds", "route", sel),
                ),
                series(
                    "Stream outcomes per second",
                    "completed, client_disconnected, error, stalled (ended by stall_timeout) "
                    "and no_token (streams that ended without a content event), stacked.",
                    "ops",
                    [(rate("streamboost_streams_total", "outcome", sel), "{{outcome}}")],
                    width=THIRD,
                    stacked=True,
                ),
                series(
                    "Events in vs writes out",
                    "Events the app produced and body writes sent to the server; coalescing "
                    "keeps writes below events.",
                    "ops",
                    [
                        (rate("streamboost_stream_events_total", "route", sel), "events {{route}}"),
                        (rate("streamboost_stream_writes_total", "route", sel), "writes {{route}}"),
                    ],
                ),
                single(
                    "Coalescing ratio",
                    "Events per write over the selected range: 1 means no coalescing.",
                    "none",
                    (ratio, "events per write"),
                ),
            ],
        ),
        (
            "Stream health",
            [
                series(
                    "Inter-token gaps",
                    "Gaps between consecutive content events as the app produced them (not "
                    "between writes, so coalescing hides no stall): p50, p95, p99 over all "
                    "gaps, counted per stream and observed at its end.",
                    "s",
                    percentiles("streamboost_inter_token_gap_seconds", "route", sel),
                ),
                series(
                    "Largest gap per stream",
                    "Each stream's longest silence between content events: p50, p95, p99. "
                    "Stalled streams (stall_timeout) show as outcome=stalled in Stream "
                    "outcomes.",
                    "s",
                    percentiles("streamboost_stream_max_gap_seconds", "route", sel),
                    width=THIRD,
                ),
            ],
        ),
        (
            "Tokens",
            [
                series(
                    "Tokens per second by model",
                    "Tokens the streams reported in their usage (OpenAI include_usage, the "
                    "Responses API, Anthropic), per model and kind: prompt, completion, cached "
                    "(prompt tokens read from a cache), reasoning. Counted at each stream's end.",
                    "short",
                    [
                        (
                            rate("streamboost_tokens_total", "model, kind", sel),
                            "{{kind}} {{model}}",
                        )
                    ],
                    width=WIDE + THIRD,
                ),
            ],
        ),
        (
            "WebSockets",
            [
                series(
                    "WebSocket connections closed per second by code",
                    "Ended connections per route and close code: the code of the close frame "
                    "(the app's or the client's), 1011 when the app raised, 1006 when it "
                    "returned without a close, rejected when it never accepted.",
                    "ops",
                    [
                        (
                            rate(f"{ws}_connections_total", "route, code", ws_sel),
                            "{{route}} {{code}}",
                        )
                    ],
                    stacked=True,
                ),
                series(
                    "Open WebSocket connections",
                    "Connections accepted and not yet ended.",
                    "short",
                    [(f"sum by (route) ({ws}_connections_active{{{ws_sel}}})", "{{route}}")],
                    width=THIRD,
                ),
                series(
                    "WebSocket connection duration",
                    "Connect to the end of the connection: p50, p95 and p99.",
                    "s",
                    percentiles(f"{ws}_connection_duration_seconds", "route", ws_sel),
                ),
                series(
                    "Time to first WebSocket message",
                    "Connect to the first message sent to the client: p50 and p95.",
                    "s",
                    percentiles(
                        f"{ws}_time_to_first_message_seconds", "route", ws_sel, (0.5, 0.95)
                    ),
                    width=THIRD,
                ),
                series(
                    "WebSocket messages per second",
                    "Messages received from clients (in), sent by the app (out), and written "
                    "to clients (with batching, one array carries several messages).",
                    "ops",
                    [
                        (
                            rate(f"{ws}_messages_total", "route, direction", ws_sel),
                            "{{direction}} {{route}}",
                        ),
                        (rate(f"{ws}_writes_total", "route", ws_sel), "writes {{route}}"),
                    ],
                    width=WIDE + THIRD,
                ),
            ],
        ),
    ]
    return add_rows(board, rows)


def cache_and_writes() -> dashboard.Dashboard:
    board = new_dashboard(
        "streamboost-cache-and-writes",
        "streamboost / Cache and deferred writes",
        "The @cached dependencies and the DeferredWriter queues of apps using streamboost.",
    )
    cache_var = query_variable(
        "cache", f"label_values(streamboost_cache_requests_total{{{SEL}}}, cache)"
    )
    writer_var = query_variable(
        "writer", f"label_values(streamboost_deferred_queue_depth{{{SEL}}}, writer)"
    )
    for variable in variables(route=False, extra=[cache_var, writer_var]):
        board = board.with_variable(variable)
    cache_sel = SEL + ', cache=~"$cache"'
    writer_sel = SEL + ', writer=~"$writer"'
    lookups = "streamboost_cache_requests_total"
    hit_ratio = (
        rate(lookups, "cache", cache_sel, 'result=~"hit|stale"')
        + " / "
        + rate(lookups, "cache", cache_sel)
    )
    items = "streamboost_deferred_items_total"
    depth = f"sum by (writer) (streamboost_deferred_queue_depth{{{writer_sel}}})"
    batch = "streamboost_deferred_batch_size"

    def range_count(outcome: str) -> str:
        # `or depth * 0` shows an explicit 0 per writer instead of "No data" when none happened.
        return (
            f'sum by (writer) (increase({items}{{{writer_sel}, outcome=~"{outcome}"}}[$__range]))'
            f" or {depth} * 0"
        )

    rows: list[tuple[str, list[Builder[Any]]]] = [
        (
            "Cache",
            [
                series(
                    "Cache requests per second by result",
                    "hit, miss, stale (served while revalidating) and error (backend down: the "
                    "loader ran), stacked per cache.",
                    "ops",
                    [(rate(lookups, "cache, result", cache_sel), "{{cache}} {{result}}")],
                    stacked=True,
                ),
                series(
                    "Cache hit ratio",
                    "Hits and stale hits over all lookups.",
                    "percentunit",
                    [(hit_ratio, "{{cache}}")],
                    width=THIRD,
                ),
                series(
                    "Cache load time",
                    "Time the loader took on a miss: p50, p95 and p99.",
                    "s",
                    percentiles("streamboost_cache_load_duration_seconds", "cache", cache_sel),
                    width=WIDE + THIRD,
                ),
            ],
        ),
        (
            "Deferred writes",
            [
                series(
                    "Queue depth", "Items waiting to be written.", "short", [(depth, "{{writer}}")]
                ),
                single(
                    "Dead letters",
                    "Items that failed every retry over the selected range (kept in the "
                    "dead-letter store), and defer() jobs that failed (logged; writer defer).",
                    "short",
                    (range_count("dead_lettered|failed"), "{{writer}}"),
                ),
                series(
                    "Items per second by outcome",
                    "written, retried and dead_lettered (defer() jobs: failed), stacked.",
                    "ops",
                    [(rate(items, "writer, outcome", writer_sel), "{{writer}} {{outcome}}")],
                    stacked=True,
                ),
                single(
                    "Retries",
                    "Write attempts retried over the selected range.",
                    "short",
                    (range_count("retried"), "{{writer}}"),
                ),
                series(
                    "Lag",
                    "Time from defer()/put() to the sink's commit: p50, p95 and p99.",
                    "s",
                    percentiles("streamboost_deferred_lag_seconds", "writer", writer_sel),
                ),
                series(
                    "Batch size",
                    "Items per sink call: mean and p95.",
                    "short",
                    [
                        (mean(batch, "writer", writer_sel), "mean {{writer}}"),
                        (quantile(0.95, batch, "writer", writer_sel), "p95 {{writer}}"),
                    ],
                    width=THIRD,
                ),
                series(
                    "Write duration",
                    "Time of one sink call: p50, p95 and p99.",
                    "s",
                    percentiles(
                        "streamboost_deferred_write_duration_seconds", "writer", writer_sel
                    ),
                    width=WIDE + THIRD,
                ),
            ],
        ),
    ]
    return add_rows(board, rows)


def add_rows(
    board: dashboard.Dashboard, rows: list[tuple[str, list[Builder[Any]]]]
) -> dashboard.Dashboard:
    """Add rows and panels with stable, sequential ids (the SDK leaves them unset)."""
    panel_id = 0
    for title, panels in rows:
        panel_id += 1
        board = board.with_row(dashboard.Row(title).id(panel_id))
        for panel in panels:
            panel_id += 1
            board = board.with_panel(panel.id(panel_id))  # type: ignore[attr-defined]
    return board


def build_dashboards() -> dict[str, str]:
    """File name to JSON text of every dashboard, exactly as committed."""
    boards = {
        "streamboost-overview.json": overview(),
        "streamboost-cache-and-writes.json": cache_and_writes(),
    }
    return {
        name: json.dumps(board.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, board in boards.items()
    }


def main() -> int:
    DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in build_dashboards().items():
        path = DASHBOARDS_DIR / name
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
