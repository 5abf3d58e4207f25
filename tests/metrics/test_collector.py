"""The host collector with a fake psutil source and hand-driven clocks, plus a real smoke test."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from slothlab.metrics import names as n
from slothlab.metrics.collector import Collector, default_collector
from slothlab.metrics.sample import Sample


def _collector(fake: Any, wall: Any, mono: Any, **kwargs: Any) -> Collector:
    return Collector(source=fake, clock=wall, monotonic=mono, host="web-1", **kwargs)


def _by_name(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.metric, tuple(sorted(s.labels.items()))): s.value for s in samples}


def test_first_sample_averages_cpu_since_boot_and_has_no_rates(fake_psutil, wall, mono) -> None:
    snap = _collector(fake_psutil, wall, mono).sample()
    assert snap["cpu"]["ratio"] == pytest.approx(0.4)  # 40 busy of 100 s
    assert snap["cpu"]["percent"] == pytest.approx(40.0)
    assert snap["cpu"]["per_core"] == [pytest.approx(0.4), pytest.approx(0.4)]
    assert snap["disk_io"]["read_bytes_per_s"] is None
    assert snap["network"]["recv_bytes_per_s"] is None
    assert snap["process"]["cpu_ratio"] is None
    assert snap["interval_s"] is None


def test_second_sample_turns_counters_into_rates(fake_psutil, wall, mono) -> None:
    c = _collector(fake_psutil, wall, mono)
    c.sample()
    fake_psutil.cpu = fake_psutil.cpu._replace(user=40.0, idle=70.0)  # +10 busy, +10 idle
    fake_psutil.cores = [fake_psutil.cores[0]._replace(user=25.0), fake_psutil.cores[1]]
    fake_psutil.disk_io = fake_psutil.disk_io._replace(read_bytes=1_400_000, write_bytes=2_000_000)
    fake_psutil.nics["eth0"] = fake_psutil.nics["eth0"]._replace(
        bytes_recv=12_000, bytes_sent=6_000
    )
    fake_psutil.nics["lo"] = fake_psutil.nics["lo"]._replace(bytes_recv=1e12)  # ignored
    fake_psutil.process.cpu += 0.02
    mono.advance(2.0)
    wall.advance(2.0)
    snap = c.sample()
    assert snap["interval_s"] == 2.0
    assert snap["cpu"]["ratio"] == pytest.approx(0.5)
    assert snap["cpu"]["per_core"] == [pytest.approx(1.0), pytest.approx(0.0)]
    assert snap["disk_io"]["read_bytes_per_s"] == pytest.approx(200_000)
    assert snap["disk_io"]["write_bytes_per_s"] == 0
    assert snap["network"]["recv_bytes_per_s"] == pytest.approx(1_000)
    assert snap["network"]["sent_bytes_per_s"] == pytest.approx(500)
    assert snap["process"]["cpu_ratio"] == pytest.approx(0.01)
    assert snap["ts"] == wall.now


def test_a_counter_reset_gives_no_rate_rather_than_a_negative_one(fake_psutil, wall, mono) -> None:
    c = _collector(fake_psutil, wall, mono)
    c.sample()
    fake_psutil.nics["eth0"] = fake_psutil.nics["eth0"]._replace(bytes_recv=0)
    mono.advance(1.0)
    assert c.sample()["network"]["recv_bytes_per_s"] is None


def test_memory_swap_load_processes_uptime_and_self(fake_psutil, wall, mono) -> None:
    snap = _collector(fake_psutil, wall, mono).sample()
    assert snap["memory"]["ratio"] == pytest.approx(0.25)
    assert snap["memory"]["percent"] == 25.0
    assert snap["swap"]["ratio"] == pytest.approx(0.25)
    assert snap["load"] == {"load1": 0.5, "load5": 0.25, "load15": 0.125}
    assert snap["processes"] == 120
    assert snap["uptime_s"] == pytest.approx(wall.now - 1_000.0)
    assert snap["process"]["rss_bytes"] == 50 * 2**20
    assert snap["host"] == "web-1"


def test_disks_skip_pseudo_filesystems_and_repeated_devices(fake_psutil, wall, mono) -> None:
    vanished = fake_psutil.partitions[0]._replace(device="/dev/sdc1", mountpoint="/gone")
    fake_psutil.partitions.append(vanished)
    disks = _collector(fake_psutil, wall, mono).sample()["disk"]
    assert sorted(disks) == ["/", "/data"]  # tmpfs, proc, a repeated device, a vanished mount
    assert disks["/data"]["ratio"] == pytest.approx(0.9)
    assert disks["/"]["device"] == "/dev/sda1"


def test_a_refused_reading_is_left_out_and_the_rest_kept(fake_psutil, wall, mono) -> None:
    fake_psutil.fail = {"swap", "load", "disk_io"}
    c = _collector(fake_psutil, wall, mono)
    snap = c.sample()
    assert snap["swap"] is None and snap["load"] is None and snap["disk_io"] is None
    assert snap["memory"]["percent"] == 25.0
    metrics = {s.metric for s in c.samples()}
    assert n.LOAD1 not in metrics and n.SWAP_USED_BYTES not in metrics
    assert n.MEMORY_USED_BYTES in metrics


def test_samples_are_prometheus_named_records(fake_psutil, wall, mono) -> None:
    c = _collector(fake_psutil, wall, mono)
    c.sample()
    mono.advance(1.0)
    c.sample()
    samples = c.samples()
    assert all(s.host == "web-1" and s.ts == wall.now for s in samples)
    values = _by_name(samples)
    assert values[(n.CPU_USAGE_RATIO, ())] == pytest.approx(0.0)
    assert values[(n.CPU_CORE_USAGE_RATIO, (("core", "1"),))] == 0.0
    assert values[(n.MEMORY_USED_BYTES, ())] == 2 * 2**30
    assert values[(n.DISK_USED_BYTES, (("mount", "/data"),))] == 900 * 2**30
    assert values[(n.NETWORK_RECEIVE_BYTES_PER_SECOND, ())] == 0.0
    assert values[(n.NETWORK_RECEIVE_BYTES_TOTAL, ())] == 10_000
    assert values[(n.LOAD15, ())] == 0.125
    assert {s.metric for s in samples} <= set(n.HOST_METRICS)
    assert len(values) == len(samples)  # each series once


def test_the_first_sample_has_no_rate_series(fake_psutil, wall, mono) -> None:
    names = {s.metric for s in _collector(fake_psutil, wall, mono).samples()}
    assert n.DISK_READ_BYTES_PER_SECOND not in names
    assert n.DISK_READ_BYTES_TOTAL in names


def test_snapshot_is_a_copy_and_takes_a_sample_only_when_there_is_none(
    fake_psutil, wall, mono
) -> None:
    c = _collector(fake_psutil, wall, mono)
    first = c.snapshot()
    first["cpu"]["ratio"] = 99
    wall.advance(5)
    again = c.snapshot()
    assert again["cpu"]["ratio"] == pytest.approx(0.4)
    assert again["ts"] == first["ts"]  # the last sample, not a new one


def test_listeners_get_every_tick_and_a_failing_one_does_not_stop_the_others(
    fake_psutil, wall, mono, caplog
) -> None:
    got: list[list[Sample]] = []

    def broken(samples: list[Sample]) -> None:
        raise RuntimeError("listener bug")

    c = _collector(fake_psutil, wall, mono, on_sample=broken)
    c.add_listener(got.append)
    c.sample()
    c.sample()
    assert len(got) == 2 and got[0][0].metric == n.CPU_USAGE_RATIO
    assert "listener" in caplog.text
    c.remove_listener(got.append)
    c.sample()
    assert len(got) == 2


def test_the_thread_samples_until_stopped(fake_psutil) -> None:
    ticks = threading.Semaphore(0)
    c = Collector(source=fake_psutil, interval_s=0.01, on_sample=lambda s: ticks.release())
    with c:
        assert c.running
        for _ in range(3):  # the first tick is taken by start() itself
            assert ticks.acquire(timeout=10), "the collector thread stopped sampling"
    assert not c.running
    c.start()  # a stopped collector starts again
    assert c.running
    c.stop()


def test_a_failing_tick_does_not_end_the_thread(fake_psutil, caplog) -> None:
    ticks = threading.Semaphore(0)
    c = Collector(source=fake_psutil, interval_s=0.01, on_sample=lambda s: ticks.release())
    with c:
        fake_psutil.cores = "not a list of cpu times"  # every tick now raises
        deadline = time.monotonic() + 10
        while "sample failed" not in caplog.text and time.monotonic() < deadline:
            ticks.acquire(timeout=0.05)
        fake_psutil.cores = [fake_psutil.cpu]
        while not ticks.acquire(timeout=0.05):
            assert time.monotonic() < deadline, "the thread did not recover"
        assert c.running


def test_interval_must_be_positive(fake_psutil) -> None:
    with pytest.raises(ValueError, match="positive"):
        Collector(source=fake_psutil, interval_s=0)


def test_default_collector_is_one_per_process() -> None:
    first = default_collector()
    try:
        assert default_collector() is first and first.running
    finally:
        first.stop()
    second = default_collector()  # stopped: a new one starts
    try:
        assert second is not first and second.running
    finally:
        second.stop()


def test_real_psutil_gives_sane_values() -> None:
    c = Collector()
    c.sample()
    snap = c.sample()
    assert 0.0 <= snap["cpu"]["ratio"] <= 1.0
    assert len(snap["cpu"]["per_core"]) >= 1
    assert snap["memory"]["total_bytes"] > 0
    assert snap["processes"] >= 1 and snap["uptime_s"] > 0
    assert snap["process"]["rss_bytes"] > 0
    assert c.disk("/")["total_bytes"] > 0
    assert {s.metric for s in c.samples()} >= {n.CPU_USAGE_RATIO, n.MEMORY_USED_BYTES}


def test_the_mount_list_is_read_again_only_after_mounts_every_s(fake_psutil, wall, mono) -> None:
    c = _collector(fake_psutil, wall, mono, mounts_every_s=60)
    assert sorted(c.sample()["disk"]) == ["/", "/data"]
    fake_psutil.partitions.append(
        fake_psutil.partitions[0]._replace(device="/dev/sdc1", mountpoint="/new")
    )
    fake_psutil.usage["/new"] = fake_psutil.usage["/"]
    mono.advance(59)
    assert sorted(c.sample()["disk"]) == ["/", "/data"]
    mono.advance(1)
    assert sorted(c.sample()["disk"]) == ["/", "/data", "/new"]


def test_every_host_metric_name_follows_prometheus_conventions() -> None:
    for name, (kind, *_) in n.HOST_METRICS.items():
        assert name.startswith("slothlab_"), name
        assert n.lint_metric_name(name, kind) == [], name
        assert name.endswith(("_total", "_bytes", "_ratio", "_seconds", "_per_second")) or (
            name in {n.LOAD1, n.LOAD5, n.LOAD15, n.PROCESSES}
        ), f"{name} names no base unit"
