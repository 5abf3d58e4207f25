"""The host collector: psutil readings on an interval, in a background thread.

Reading a value never blocks: :meth:`Collector.snapshot` and friends return the last sample
(``psutil.cpu_percent(interval=None)`` semantics), unlike sloth-runner's ``system_cpu()``,
which waits a full second. CPU usage is computed from consecutive ``cpu_times`` (the first
sample averages since boot); disk and network I/O are rates over consecutive counters, so the
first sample has none.

The psutil functions come from an injectable *source* (default: the real ``psutil`` module)
and the clocks are injectable too, so tests feed fixed values and need no sleeps.

>>> with Collector(interval_s=60) as c:
...     snap = c.snapshot()
>>> 0.0 <= snap["cpu"]["ratio"] <= 1.0, snap["memory"]["total_bytes"] > 0
(True, True)
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, cast

from slothlab._types import Clock
from slothlab.metrics import names as n
from slothlab.metrics.sample import NO_LABELS, Sample

__all__ = [
    "DEFAULT_INTERVAL_S",
    "PSEUDO_FILESYSTEMS",
    "Collector",
    "PsutilSource",
    "Reading",
    "default_collector",
    "readings",
]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0
"""Seconds between two samples of a collector made without ``interval_s``."""

PSEUDO_FILESYSTEMS = frozenset(
    [
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "procfs",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
        "tmpfs",
        "ramfs",
        "overlayfs",
        "nfsd",
        "fuse.portal",
        "fuse.lxcfs",
    ]
)
"""Filesystem types whose mounts are not reported (kernel and in-memory filesystems)."""

_PSEUDO_MOUNT_PREFIXES = ("/proc", "/sys", "/dev", "/run/credentials", "/var/lib/docker/")

SampleListener = Callable[[list[Sample]], None]
"""A function called with the samples of every new tick (from the collector's thread)."""


class PsutilSource(Protocol):
    """The psutil functions the collector calls; the ``psutil`` module itself is one."""

    def cpu_times(self, percpu: bool = ...) -> Any: ...

    def virtual_memory(self) -> Any: ...

    def swap_memory(self) -> Any: ...

    def disk_partitions(self, all: bool = ...) -> Any: ...

    def disk_usage(self, path: str) -> Any: ...

    def disk_io_counters(self, perdisk: bool = ...) -> Any: ...

    def net_io_counters(self, pernic: bool = ...) -> Any: ...

    def getloadavg(self) -> Any: ...

    def pids(self) -> Any: ...

    def boot_time(self) -> Any: ...

    def Process(self, pid: int | None = ...) -> Any: ...


class Reading(NamedTuple):
    """One exported value of a host metric: name, Prometheus type, value and labels."""

    name: str
    kind: str
    value: float
    labels: Mapping[str, str] = NO_LABELS


class _Previous(NamedTuple):
    """The raw counters of the last tick, to turn the next tick's counters into rates."""

    at: float
    cpu: tuple[float, float]
    cores: list[tuple[float, float]]
    disk: tuple[float, float] | None
    net: tuple[float, float] | None
    proc_cpu: float | None


def _real_psutil() -> PsutilSource:
    import psutil

    # the module matches the protocol at run time; its stubs' exact signatures differ slightly
    return cast(PsutilSource, psutil)


def _busy_total(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds (psutil's rule: guest time is already in user time)."""
    fields = times._asdict()
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


def _usage(now: tuple[float, float], before: tuple[float, float]) -> float:
    """Busy share between two (busy, total) readings, clamped to 0..1."""
    busy, total = now[0] - before[0], now[1] - before[1]
    if total <= 0:
        return 0.0
    return min(max(busy / total, 0.0), 1.0)


def _rate(now: float, before: float, seconds: float) -> float | None:
    """Per-second rate of a counter; None across a reset or a zero interval."""
    if seconds <= 0 or now < before:
        return None
    return (now - before) / seconds


def _is_real_mount(part: Any) -> bool:
    mount = str(part.mountpoint)
    if part.fstype in PSEUDO_FILESYSTEMS or not part.fstype:
        return False
    return not any(mount == p.rstrip("/") or mount.startswith(p) for p in _PSEUDO_MOUNT_PREFIXES)


def _is_loopback(nic: str) -> bool:
    return nic == "lo" or (nic.startswith("lo") and nic[2:].isdigit())


class Collector:
    """Samples the host with psutil every ``interval_s`` seconds in a daemon thread.

    Args:
        interval_s: seconds between samples.
        source: the psutil functions (default: the ``psutil`` module).
        clock: wall clock for sample timestamps (default ``time.time``).
        monotonic: clock for rates (default ``time.monotonic``).
        host: the host name the samples carry (default ``socket.gethostname()``).
        on_sample: called with the samples of every tick (e.g. batched history writes).
        mounts_every_s: how often the list of mounted filesystems is read again; reading it
            is the dearest call of a tick, and mounts rarely change.

    Use :meth:`start` / :meth:`stop` or ``with Collector() as c:``; :meth:`sample` takes one
    sample now (what tests call, with a fake source and clocks).
    """

    def __init__(
        self,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        source: PsutilSource | None = None,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        host: str | None = None,
        on_sample: SampleListener | None = None,
        mounts_every_s: float = 60.0,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be a positive number of seconds, not {interval_s}")
        self.interval_s = float(interval_s)
        self.source: PsutilSource = source if source is not None else _real_psutil()
        self.host = host or socket.gethostname()
        self._clock, self._monotonic = clock, monotonic
        self._listeners: list[SampleListener] = [on_sample] if on_sample else []
        self._process = self.source.Process()
        self._previous: _Previous | None = None
        self._mounts_every_s = mounts_every_s
        self._mounts: tuple[float, list[Any]] | None = None  # (read at, real mounts)
        self._last: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Collector:
        """Take a first sample now and keep sampling in a daemon thread; idempotent."""
        if self.running:
            return self
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="slothlab-collector", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the sampling thread and wait for it (up to ``timeout_s``)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """True while the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        next_at = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.sample()
            except Exception:  # one bad tick must not end sampling
                log.exception("host metrics sample failed")
            next_at += self.interval_s
            if next_at < time.monotonic():  # fell behind (suspended): skip, do not burst
                next_at = time.monotonic() + self.interval_s

    def add_listener(self, listener: SampleListener) -> None:
        """Call ``listener(samples)`` after every future tick."""
        self._listeners.append(listener)

    def remove_listener(self, listener: SampleListener) -> None:
        """Stop calling ``listener``; no error when it was not added."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- reading ------------------------------------------------------------------------------

    def sample(self) -> dict[str, Any]:
        """Take one sample now, keep it as the latest, tell the listeners, and return it."""
        with self._lock:
            snap = self._read()
            self._last = snap
        if self._listeners:
            samples = _to_samples(snap)
            for listener in list(self._listeners):
                try:
                    listener(samples)
                except Exception:
                    log.exception("collector listener %r failed", listener)
        return snap

    def snapshot(self) -> dict[str, Any]:
        """The latest sample as plain JSON-able data (taken now if there is none yet)."""
        last = self._last
        if last is None:
            last = self.sample()
        return copy.deepcopy(last)

    def samples(self) -> list[Sample]:
        """The latest sample as :class:`~slothlab.metrics.sample.Sample` records."""
        return _to_samples(self._last if self._last is not None else self.sample())

    def readings(self) -> list[Reading]:
        """The latest sample as typed readings (what the Prometheus exposition renders)."""
        return readings(self._last if self._last is not None else self.sample())

    def disk(self, path: str = "/") -> dict[str, float]:
        """Usage of the filesystem holding ``path``, read now (one ``statvfs``, no waiting)."""
        return _disk_usage(self.source.disk_usage(path))

    # -- one tick -----------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        src, at = self.source, self._monotonic()
        prev = self._previous
        seconds = at - prev.at if prev else 0.0
        cpu = _busy_total(src.cpu_times(percpu=False))
        cores = [_busy_total(t) for t in src.cpu_times(percpu=True)]
        disk_io = self._disk_io()
        net = self._net()
        proc_cpu = self._process_cpu()
        snap: dict[str, Any] = {
            "ts": self._clock(),
            "host": self.host,
            "interval_s": seconds if prev else None,
            "cpu": _cpu_section(cpu, cores, prev),
            "memory": self._guard("memory", self._memory),
            "swap": self._guard("swap", self._swap),
            "disk": self._guard("disk", self._disks) or {},
            "disk_io": _io_section(disk_io, prev.disk if prev else None, seconds, _DISK_IO_KEYS),
            "network": _io_section(net, prev.net if prev else None, seconds, _NET_KEYS),
            "load": self._guard("load", self._load),
            "processes": self._guard("processes", lambda: len(src.pids())),
            "uptime_s": self._guard("uptime", lambda: max(0.0, self._clock() - src.boot_time())),
            "process": self._guard("process", lambda: self._self_section(proc_cpu, prev, seconds)),
        }
        self._previous = _Previous(at, cpu, cores, disk_io, net, proc_cpu)
        return snap

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()``, or None when the platform refuses that reading (logged once per tick)."""
        try:
            return fn()
        except (OSError, AttributeError, NotImplementedError) as exc:
            log.debug("cannot read %s: %s", what, exc)
            return None

    def _memory(self) -> dict[str, float]:
        vm = self.source.virtual_memory()
        return {
            "total_bytes": vm.total,
            "used_bytes": vm.used,
            "available_bytes": vm.available,
            "percent": vm.percent,
            "ratio": _share(vm.total - vm.available, vm.total),
        }

    def _swap(self) -> dict[str, float]:
        sw = self.source.swap_memory()
        return {
            "total_bytes": sw.total,
            "used_bytes": sw.used,
            "percent": sw.percent,
            "ratio": _share(sw.used, sw.total),
        }

    def _real_mounts(self) -> list[Any]:
        now = self._monotonic()
        if self._mounts is None or now - self._mounts[0] >= self._mounts_every_s:
            parts = self.source.disk_partitions(all=False)
            self._mounts = (now, [p for p in parts if _is_real_mount(p)])
        return self._mounts[1]

    def _disks(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        seen: set[str] = set()
        for part in self._real_mounts():
            if part.device in seen or part.mountpoint in out:
                continue
            try:
                usage = self.source.disk_usage(part.mountpoint)
            except OSError:  # unmounted meanwhile, or no permission
                continue
            seen.add(part.device)
            out[part.mountpoint] = {**_disk_usage(usage), "device": part.device}
            out[part.mountpoint]["fstype"] = part.fstype
        return out

    def _disk_io(self) -> tuple[float, float] | None:
        io = self._guard("disk I/O", lambda: self.source.disk_io_counters(perdisk=False))
        return (float(io.read_bytes), float(io.write_bytes)) if io else None

    def _net(self) -> tuple[float, float] | None:
        nics = self._guard("network", lambda: self.source.net_io_counters(pernic=True))
        if not nics:
            return None
        real = [c for nic, c in nics.items() if not _is_loopback(nic)]
        return float(sum(c.bytes_recv for c in real)), float(sum(c.bytes_sent for c in real))

    def _load(self) -> dict[str, float]:
        one, five, fifteen = self.source.getloadavg()
        return {"load1": one, "load5": five, "load15": fifteen}

    def _process_cpu(self) -> float | None:
        times = self._guard("process CPU", self._process.cpu_times)
        return float(times.user + times.system) if times is not None else None

    def _self_section(
        self, cpu_s: float | None, prev: _Previous | None, seconds: float
    ) -> dict[str, Any]:
        ratio = None
        if cpu_s is not None and prev is not None and prev.proc_cpu is not None and seconds > 0:
            ratio = max(0.0, cpu_s - prev.proc_cpu) / seconds
        return {
            "pid": self._process.pid,
            "rss_bytes": self._process.memory_info().rss,
            "cpu_seconds": cpu_s,
            "cpu_ratio": ratio,
            "cpu_percent": None if ratio is None else ratio * 100.0,
        }


def _share(part: float, whole: float) -> float:
    return min(max(part / whole, 0.0), 1.0) if whole > 0 else 0.0


def _disk_usage(usage: Any) -> dict[str, float]:
    return {
        "total_bytes": usage.total,
        "used_bytes": usage.used,
        "free_bytes": usage.free,
        "percent": usage.percent,
        "ratio": _share(usage.used, usage.used + usage.free),
    }


def _cpu_section(
    cpu: tuple[float, float], cores: list[tuple[float, float]], prev: _Previous | None
) -> dict[str, Any]:
    ratio = _usage(cpu, prev.cpu if prev else (0.0, 0.0))
    if prev and len(prev.cores) == len(cores):
        per_core = [_usage(c, p) for c, p in zip(cores, prev.cores, strict=True)]
    else:
        per_core = [_usage(c, (0.0, 0.0)) for c in cores]
    return {
        "ratio": ratio,
        "percent": ratio * 100.0,
        "count": len(cores),
        "per_core": per_core,
        "per_core_percent": [r * 100.0 for r in per_core],
    }


def _io_section(
    now: tuple[float, float] | None,
    before: tuple[float, float] | None,
    seconds: float,
    keys: tuple[str, str, str, str],
) -> dict[str, Any] | None:
    if now is None:
        return None
    rates: tuple[float | None, float | None] = (None, None)
    if before is not None:
        rates = (_rate(now[0], before[0], seconds), _rate(now[1], before[1], seconds))
    return dict(zip(keys, (now[0], now[1], rates[0], rates[1]), strict=True))


_DISK_IO_KEYS = ("read_bytes", "write_bytes", "read_bytes_per_s", "write_bytes_per_s")
_NET_KEYS = ("bytes_recv", "bytes_sent", "recv_bytes_per_s", "sent_bytes_per_s")


def readings(snap: Mapping[str, Any]) -> list[Reading]:
    """Turn a snapshot into typed readings; values that are missing (None) are left out.

    >>> snap = {"cpu": {"ratio": 0.25, "per_core": [0.5, 0.0]}, "load": None}
    >>> [(r.name, r.value, dict(r.labels)) for r in readings(snap)][:2]
    [('slothlab_cpu_usage_ratio', 0.25, {}), ('slothlab_cpu_core_usage_ratio', 0.5, {'core': '0'})]
    """
    out: list[Reading] = []

    def add(name: str, value: Any, labels: Mapping[str, str] = NO_LABELS) -> None:
        if value is not None:
            out.append(Reading(name, n.HOST_METRICS[name][0], float(value), labels))

    cpu = snap.get("cpu") or {}
    add(n.CPU_USAGE_RATIO, cpu.get("ratio"))
    for core, ratio in enumerate(cpu.get("per_core") or []):
        add(n.CPU_CORE_USAGE_RATIO, ratio, {"core": str(core)})
    _add_section(add, snap.get("memory"), _MEMORY)
    _add_section(add, snap.get("swap"), _SWAP)
    for mount, usage in sorted((snap.get("disk") or {}).items()):
        _add_section(add, usage, _DISK, {"mount": mount})
    _add_section(add, snap.get("disk_io"), _DISK_IO)
    _add_section(add, snap.get("network"), _NETWORK)
    _add_section(add, snap.get("load"), _LOAD)
    add(n.PROCESSES, snap.get("processes"))
    add(n.UPTIME_SECONDS, snap.get("uptime_s"))
    _add_section(add, snap.get("process"), _PROCESS)
    return out


_MEMORY = {
    "total_bytes": n.MEMORY_TOTAL_BYTES,
    "used_bytes": n.MEMORY_USED_BYTES,
    "available_bytes": n.MEMORY_AVAILABLE_BYTES,
    "ratio": n.MEMORY_USAGE_RATIO,
}
_SWAP = {
    "total_bytes": n.SWAP_TOTAL_BYTES,
    "used_bytes": n.SWAP_USED_BYTES,
    "ratio": n.SWAP_USAGE_RATIO,
}
_DISK = {
    "total_bytes": n.DISK_TOTAL_BYTES,
    "used_bytes": n.DISK_USED_BYTES,
    "free_bytes": n.DISK_FREE_BYTES,
    "ratio": n.DISK_USAGE_RATIO,
}
_DISK_IO = {
    "read_bytes_per_s": n.DISK_READ_BYTES_PER_SECOND,
    "write_bytes_per_s": n.DISK_WRITE_BYTES_PER_SECOND,
    "read_bytes": n.DISK_READ_BYTES_TOTAL,
    "write_bytes": n.DISK_WRITE_BYTES_TOTAL,
}
_NETWORK = {
    "recv_bytes_per_s": n.NETWORK_RECEIVE_BYTES_PER_SECOND,
    "sent_bytes_per_s": n.NETWORK_TRANSMIT_BYTES_PER_SECOND,
    "bytes_recv": n.NETWORK_RECEIVE_BYTES_TOTAL,
    "bytes_sent": n.NETWORK_TRANSMIT_BYTES_TOTAL,
}
_LOAD = {"load1": n.LOAD1, "load5": n.LOAD5, "load15": n.LOAD15}
_PROCESS = {"rss_bytes": n.PROCESS_RESIDENT_MEMORY_BYTES, "cpu_ratio": n.PROCESS_CPU_USAGE_RATIO}


def _add_section(
    add: Callable[[str, Any, Mapping[str, str]], None],
    section: Mapping[str, Any] | None,
    fields: Mapping[str, str],
    labels: Mapping[str, str] = NO_LABELS,
) -> None:
    if not section:
        return
    for key, name in fields.items():
        add(name, section.get(key), labels)


def _to_samples(snap: Mapping[str, Any]) -> list[Sample]:
    ts, host = float(snap["ts"]), str(snap["host"])
    return [Sample(ts, host, r.name, r.value, r.labels) for r in readings(snap)]


_default: tuple[int, Collector] | None = None  # (pid, collector): a forked child makes its own
_default_lock = threading.Lock()


def default_collector(**kwargs: Any) -> Collector:
    """The process-wide collector, created and started on first use (one per process).

    ``kwargs`` (``interval_s``, ...) apply only to the call that creates it. A forked child
    gets a new one, since the parent's sampling thread does not survive ``fork``; so does a
    caller after the collector was stopped.
    """
    global _default
    with _default_lock:
        if _default is None or _default[0] != os.getpid() or not _default[1].running:
            _default = (os.getpid(), Collector(**kwargs).start())
        return _default[1]
