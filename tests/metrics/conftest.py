"""Fixtures of the metrics tests: a fake psutil source and a hand-driven clock."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest

CpuTimes = namedtuple(
    "CpuTimes",
    "user nice system idle iowait irq softirq steal guest guest_nice",
    defaults=[0.0] * 10,
)
Memory = namedtuple("Memory", "total available percent used free")
Swap = namedtuple("Swap", "total used free percent sin sout")
Partition = namedtuple("Partition", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")
DiskIO = namedtuple("DiskIO", "read_count write_count read_bytes write_bytes")
NetIO = namedtuple("NetIO", "bytes_sent bytes_recv packets_sent packets_recv")
ProcTimes = namedtuple("ProcTimes", "user system children_user children_system")
MemInfo = namedtuple("MemInfo", "rss vms")


class FakeProcess:
    """psutil.Process of the sampling process, with settable readings."""

    def __init__(self) -> None:
        self.pid = 4242
        self.cpu = 1.0
        self.rss = 50 * 2**20

    def cpu_times(self) -> ProcTimes:
        return ProcTimes(self.cpu, 0.0, 0.0, 0.0)

    def memory_info(self) -> MemInfo:
        return MemInfo(self.rss, 2 * self.rss)


class FakePsutil:
    """The psutil functions the collector calls, answering fixed (settable) values."""

    def __init__(self) -> None:
        self.cpu = CpuTimes(user=30.0, system=10.0, idle=60.0)
        self.cores = [CpuTimes(user=20.0, idle=30.0), CpuTimes(user=20.0, idle=30.0)]
        self.memory = Memory(8 * 2**30, 6 * 2**30, 25.0, 2 * 2**30, 1 * 2**30)
        self.swap = Swap(2 * 2**30, 2**29, 3 * 2**29, 25.0, 0, 0)
        self.partitions = [
            Partition("/dev/sda1", "/", "ext4", "rw"),
            Partition("/dev/sdb1", "/data", "xfs", "rw"),
            Partition("/dev/sda1", "/var/lib/bind", "ext4", "rw"),  # same device again
            Partition("tmpfs", "/run", "tmpfs", "rw"),
            Partition("proc", "/proc", "proc", "rw"),
        ]
        self.usage = {
            "/": Usage(100 * 2**30, 40 * 2**30, 60 * 2**30, 40.0),
            "/data": Usage(1000 * 2**30, 900 * 2**30, 100 * 2**30, 90.0),
        }
        self.disk_io = DiskIO(10, 20, 1_000_000, 2_000_000)
        self.nics = {"lo": NetIO(9e9, 9e9, 1, 1), "eth0": NetIO(5_000, 10_000, 5, 10)}
        self.load = (0.5, 0.25, 0.125)
        self.pid_list = list(range(1, 121))
        self.boot = 1_000.0
        self.process = FakeProcess()
        self.fail: set[str] = set()

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail:
            raise PermissionError(f"no access to {what}")

    def cpu_times(self, percpu: bool = False) -> Any:
        return list(self.cores) if percpu else self.cpu

    def virtual_memory(self) -> Memory:
        self._maybe_fail("memory")
        return self.memory

    def swap_memory(self) -> Swap:
        self._maybe_fail("swap")
        return self.swap

    def disk_partitions(self, all: bool = False) -> list[Partition]:
        return list(self.partitions)

    def disk_usage(self, path: str) -> Usage:
        if path not in self.usage:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.usage[path]

    def disk_io_counters(self, perdisk: bool = False) -> DiskIO | None:
        self._maybe_fail("disk_io")
        return self.disk_io

    def net_io_counters(self, pernic: bool = False) -> dict[str, NetIO]:
        return dict(self.nics)

    def getloadavg(self) -> tuple[float, float, float]:
        self._maybe_fail("load")
        return self.load

    def pids(self) -> list[int]:
        return list(self.pid_list)

    def boot_time(self) -> float:
        return self.boot

    def Process(self, pid: int | None = None) -> FakeProcess:
        return self.process


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_psutil() -> FakePsutil:
    """A fresh fake psutil source."""
    return FakePsutil()


@pytest.fixture
def wall() -> FakeClock:
    """A wall clock at 2024-01-01T00:00:00Z."""
    return FakeClock(1_704_067_200.0)


@pytest.fixture
def mono() -> FakeClock:
    """A monotonic clock."""
    return FakeClock(100.0)
