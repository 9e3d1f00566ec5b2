"""One export spec and one scrape-time mechanism for streams, caches and deferred writers.

The cache's and the deferred writers' families come from the spec in one process (the
``PlainCollector``) and in multiprocess mode (the ``IntMirror``'s prometheus_client values);
the mirror copies exactly what the collector would export.
"""

from __future__ import annotations

import gc
import random

import pytest
from prometheus_client import CollectorRegistry

from streamboost._cache._metrics import CacheStats, register_prometheus
from streamboost._cache._metrics import samples as cache_samples
from streamboost._deferred._metrics import metrics_for
from streamboost._deferred._metrics import samples as deferred_samples
from streamboost._export import _spec as spec
from streamboost._export.prometheus import _int_sync
from streamboost._export.prometheus._int_sync import IntMirror
from streamboost._export.prometheus._plain import PlainCollector


class Source:
    """A deferred writer as its metrics see it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.written = self.retried = self.dead_lettered = self.lost = 0
        self.depth = 0

    def queue_depth(self) -> int:
        return self.depth

    def outcome_labels(self) -> tuple[str, str, str]:
        return ("written", "retried", "dead_lettered")


def described(registry: CollectorRegistry, prefix: str) -> set[tuple[str, str, str]]:
    return {
        (m.name, m.documentation, m.type) for m in registry.collect() if m.name.startswith(prefix)
    }


def want(*families: spec.Family) -> set[tuple[str, str, str]]:
    return {(f.name, f.help, f.kind) for f in families}


def test_cache_and_deferred_families_are_the_specs() -> None:
    registry = CollectorRegistry()
    stats = CacheStats("profiles")
    register_prometheus(stats, registry)
    writer = Source("messages")
    metrics_for(registry).add(writer)
    assert described(registry, "streamboost_cache_") == want(*spec.CACHE_FAMILIES)
    assert described(registry, "streamboost_deferred_") == want(
        *spec.DEFERRED_COUNTS, *spec.DEFERRED_BATCH
    )
    # The multiprocess families: the same names, help and types.
    mirrored = CollectorRegistry()
    IntMirror(spec.CACHE_FAMILIES, cache_samples, mirrored)
    IntMirror(spec.DEFERRED_COUNTS, deferred_samples, mirrored)
    assert described(mirrored, "streamboost_cache_") == want(*spec.CACHE_FAMILIES)
    assert described(mirrored, "streamboost_deferred_") == want(*spec.DEFERRED_COUNTS)


def test_sources_sharing_a_name_add_up_and_series_are_sorted() -> None:
    collector = PlainCollector(spec.CACHE_FAMILIES, cache_samples)
    one, two, other = CacheStats("b"), CacheStats("b"), CacheStats("a")
    for stats in (one, two, other):
        collector.add(stats)
    one.hits, two.hits, other.misses = 1, 2, 5
    one.observe_load(0.003)
    two.observe_load(0.003)
    two.observe_load(20.0)
    requests, load = collector.collect()
    values = [(s.labels["cache"], s.labels["result"], s.value) for s in requests.samples]
    assert values == sorted(values)
    assert ("b", "hit", 3) in values
    assert ("a", "miss", 5) in values
    by_name = {
        (s.name, s.labels.get("le")): s.value for s in load.samples if s.labels["cache"] == "b"
    }
    assert by_name["streamboost_cache_load_duration_seconds_count", None] == 3
    assert by_name["streamboost_cache_load_duration_seconds_bucket", "0.005"] == 2
    assert by_name["streamboost_cache_load_duration_seconds_bucket", "+Inf"] == 3
    assert by_name["streamboost_cache_load_duration_seconds_sum", None] == pytest.approx(20.006)


def counts(metrics: object) -> dict[tuple[str, ...], float]:
    """Counter and gauge samples of collected families, by (name, label values)."""
    out: dict[tuple[str, ...], float] = {}
    for family in metrics:  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            name = sample.name.removesuffix("_total")
            out[(name, *sample.labels.values())] = sample.value
    return out


def test_the_mirror_copies_what_the_collector_exports() -> None:
    rng = random.Random(12)
    collector = PlainCollector(spec.DEFERRED_COUNTS, deferred_samples)
    registry = CollectorRegistry()
    mirror = IntMirror(spec.DEFERRED_COUNTS, deferred_samples, registry)
    sources = [Source(name) for name in ("a", "a", "b")]
    for source in sources:
        collector.add(source)
        mirror.add(source)
    # Every counter's label sets exist from the start, at 0; depths once copied.
    assert all(v == 0 for v in counts(registry.collect()).values())
    for _ in range(200):
        source = rng.choice(sources)
        outcome = rng.choice(("written", "retried", "dead_lettered", "lost"))
        setattr(source, outcome, getattr(source, outcome) + rng.randrange(3))
        source.depth = rng.randrange(10)
        if rng.random() < 0.3:
            with _int_sync.LOCK:
                mirror.sync()
            assert counts(registry.collect()) == counts(collector.collect())
    with _int_sync.LOCK:
        mirror.sync()
    assert counts(registry.collect()) == counts(collector.collect())

    # A source gone: its counts stay on file, its depth reads 0 (the collector forgets both).
    before = counts(registry.collect())
    gone = sources.pop()
    del gone, source
    gc.collect()
    with _int_sync.LOCK:
        mirror.sync()
    after = counts(registry.collect())
    assert after[("streamboost_deferred_queue_depth", "b")] == 0
    items = {k: v for k, v in after.items() if k[0] == "streamboost_deferred_items"}
    assert items == {k: v for k, v in before.items() if k[0] == "streamboost_deferred_items"}
    assert ("streamboost_deferred_queue_depth", "b") not in counts(collector.collect())
