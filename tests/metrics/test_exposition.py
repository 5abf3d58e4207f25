"""The /metrics text: promtool, a parser round trip, and the invariants promtool does not check.

notes/reliability.md: promtool alone passed duplicate series and a histogram without +Inf, so
:func:`check_exposition` checks the text format 0.0.4 rules itself.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from slothlab.metrics import names as n
from slothlab.metrics.collector import Collector
from slothlab.metrics.custom import CustomMetrics
from slothlab.metrics.exposition import CONTENT_TYPE, render

NASTY = ['say "hi"', "back\\slash", "two\nlines", "ünïcödé ✓", "", "a,b=c}", "trailing\\"]

_SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), value)


def _labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        assert m, f"bad label syntax at {text[pos:]!r}"
        assert m[1] not in out, f"label {m[1]} twice"
        out[m[1]] = _unescape(m[2])
        pos = m.end()
    return out


def _family_of(name: str, types: dict[str, str]) -> str:
    if name in types:
        return name
    for family, kind in types.items():
        if any(name == family + s for s in _SUFFIXES.get(kind, ())):
            return family
    raise AssertionError(f"sample {name} has no # TYPE line before it")


def check_exposition(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Assert the text format 0.0.4 invariants; return the samples by family."""
    assert text == "" or text.endswith("\n"), "the last line must end with \\n"
    helps: set[str] = set()
    types: dict[str, str] = {}
    closed: set[str] = set()
    current: str | None = None
    series: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    by_family: dict[str, list[tuple[str, dict[str, str], float]]] = defaultdict(list)

    def enter(family: str) -> None:
        nonlocal current
        if family != current:
            assert family not in closed, f"lines of {family} are not contiguous"
            if current is not None:
                closed.add(current)
            current = family

    for line in text.split("\n")[:-1]:  # only \n ends a line; \x1e or \u2028 do not
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"HELP of {name} twice"
            helps.add(name)
            enter(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"TYPE of {name} twice"
            assert name not in by_family, f"TYPE of {name} after its samples"
            types[name] = kind
            enter(name)
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            family = _family_of(m["name"], types)
            assert family in helps, f"{family} has no HELP before its samples"
            enter(family)
            labels = _labels(m["labels"])
            key = (m["name"], frozenset(labels.items()))
            assert key not in series, f"series {line!r} twice"
            series.add(key)
            by_family[family].append((m["name"], labels, float(m["value"])))
    for family, kind in types.items():
        if kind == "histogram":
            _check_histogram(family, by_family[family])
    return by_family


def _check_histogram(family: str, samples: list[tuple[str, dict[str, str], float]]) -> None:
    buckets: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = defaultdict(list)
    counts: dict[frozenset[tuple[str, str]], float] = {}
    for name, labels, value in samples:
        rest = frozenset((k, v) for k, v in labels.items() if k != "le")
        if name == f"{family}_bucket":
            buckets[rest].append((float(labels["le"]), value))
        elif name == f"{family}_count":
            counts[rest] = value
    assert set(buckets) == set(counts), f"{family}: buckets and _count differ in series"
    for rest, rows in buckets.items():
        bounds = [b for b, _ in rows]
        assert bounds == sorted(bounds) and bounds[-1] == float("inf"), f"{family}: no +Inf"
        values = [v for _, v in rows]
        assert values == sorted(values), f"{family}: buckets are not cumulative"
        assert values[-1] == counts[rest], f"{family}: +Inf bucket != _count"


def promtool(text: bytes) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: apt-get install prometheus (.ci/run does it)"
    return subprocess.run(
        [exe, "check", "metrics"], input=text.decode(), capture_output=True, text=True, timeout=60
    )


def _parsed(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture
def collector(fake_psutil, wall, mono) -> Collector:
    c = Collector(source=fake_psutil, clock=wall, monotonic=mono, host="h")
    c.sample()
    mono.advance(1.0)
    c.sample()
    return c


@pytest.fixture
def custom() -> CustomMetrics:
    m = CustomMetrics()
    for i, value in enumerate(NASTY):
        m.counter("requests_total", i + 1, {"path": value})
        m.gauge("queue_depth", i, {"queue": value, "zone": "z1"})
        m.histogram("request_size_bytes", 10**i, {"route": value})
        m.record_timer("backup", 1.5 * i, {"step": value})
    m.counter("requests_total", 1)  # no tags beside tagged series
    return m


def test_host_and_custom_pass_promtool_and_the_invariants(collector, custom) -> None:
    body = render(collector, custom)
    result = promtool(body)
    assert result.returncode == 0, result.stdout + result.stderr
    families = check_exposition(body.decode())
    assert n.CPU_USAGE_RATIO in families and "request_size_bytes" in families
    assert "backup_seconds" in families


def test_label_values_survive_a_parser_round_trip(custom) -> None:
    text = render(custom=custom).decode()
    check_exposition(text)
    parsed = _parsed(text)
    paths = {s.labels["path"]: s.value for s in parsed["requests"].samples}
    expected = {v: float(i + 1) for i, v in enumerate(NASTY) if v}
    expected[""] = 1.0 + 5  # "" is no label: the untagged series and the "" one are one
    assert paths == expected
    queues = {s.labels["queue"] for s in parsed["queue_depth"].samples}
    assert queues == set(NASTY)
    assert parsed["backup_seconds"].type == "histogram"


def test_host_metrics_round_trip_with_their_values(collector) -> None:
    text = render(collector).decode()
    check_exposition(text)
    parsed = _parsed(text)
    disk = {s.labels["mount"]: s.value for s in parsed[n.DISK_USED_BYTES].samples}
    assert disk == {"/": 40 * 2**30, "/data": 900 * 2**30}
    assert parsed[n.LOAD1].samples[0].value == 0.5
    total = parsed[n.NETWORK_RECEIVE_BYTES_TOTAL.removesuffix("_total")]
    assert total.type == "counter" and total.samples[0].value == 10_000


def test_the_first_sample_without_rates_renders(fake_psutil) -> None:
    text = render(Collector(source=fake_psutil)).decode()
    check_exposition(text)
    assert n.NETWORK_RECEIVE_BYTES_PER_SECOND not in text
    assert promtool(text.encode()).returncode == 0


def test_sloth_runner_style_names_stay_valid_text(custom) -> None:
    custom.histogram("compat_latency_ms", 10)
    custom.counter("compat_jobs_total")
    custom.record_timer("compat_loop", 3.0)
    body = render(custom=custom)
    check_exposition(body.decode())
    assert "compat_latency_ms" in _parsed(body.decode())
    result = promtool(body)  # lint complaints (exit 3) are fine here; a parse error is not
    assert result.returncode in (0, 3), result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()


def test_a_new_tag_key_between_scrapes_keeps_the_text_valid() -> None:
    m = CustomMetrics()
    m.counter("jobs_total", 2)
    first = render(custom=m).decode()
    m.counter("jobs_total", 1, {"kind": "batch"})
    second = render(custom=m).decode()
    check_exposition(first)
    check_exposition(second)
    assert 'jobs_total{kind=""} 2.0' in second and 'jobs_total{kind="batch"} 1.0' in second


def test_a_name_produced_twice_is_rendered_once(collector, caplog) -> None:
    m = CustomMetrics()
    m.gauge(n.LOAD1, 99)
    with caplog.at_level(logging.WARNING):
        text = render(collector, m).decode()
    check_exposition(text)
    assert _parsed(text)[n.LOAD1].samples[0].value == 0.5  # the first source wins
    assert "produced twice" in caplog.text


def test_other_registries_are_included() -> None:
    registry = CollectorRegistry()
    Counter("agent_tasks", "Tasks run.", ["status"], registry=registry).labels("ok").inc(3)
    body = render(registries=[registry])
    check_exposition(body.decode())
    assert _parsed(body.decode())["agent_tasks"].samples[0].value == 3
    assert promtool(body).returncode == 0


def test_the_custom_registry_works_with_prometheus_client(custom) -> None:
    text = generate_latest(custom.registry).decode()
    check_exposition(text)
    assert custom.registry is custom.registry
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


_names = st.sampled_from(["ops_total", "depth", "size_bytes", "work"])
_tags = st.dictionaries(
    st.sampled_from(["a", "b", "route"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    max_size=3,
)
_ops = st.lists(st.tuples(_names, _tags, st.integers(0, 1000)), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_any_sequence_of_updates_gives_valid_text(ops: list[Any]) -> None:
    m = CustomMetrics()
    for name, tags, value in ops:
        if name == "ops_total":
            m.counter(name, value, tags)
        elif name == "depth":
            m.gauge(name, value, tags)
        elif name == "size_bytes":
            m.histogram(name, value, tags)
        else:
            m.record_timer(name, value, tags)
    text = render(custom=m).decode()
    families = check_exposition(text)
    parsed = _parsed(text)
    for name in m.names():
        exported = "work_seconds" if name == "work" else name
        assert exported in families and exported.removesuffix("_total") in parsed
    if "ops_total" in m.names():
        total = sum(s.value for s in parsed["ops"].samples)
        assert total == m.counter("ops_total", 0)
