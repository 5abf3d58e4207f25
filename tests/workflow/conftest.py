"""Helpers for the workflow tests: a real Lua runtime, a real store, a fake sleep."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from slothlab.lua import Capabilities, Runtime
from slothlab.state import Store
from slothlab.workflow import Engine, RunResult, TaskEvent, WorkflowSpec, collect


@dataclass
class Harness:
    """Runs Lua workflow code in a fresh runtime and keeps what it printed and slept."""

    workdir: Path
    capabilities: Capabilities = field(default_factory=Capabilities.local)
    logs: list[tuple[str, str]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    events: list[TaskEvent] = field(default_factory=list)
    runtime: Runtime | None = None

    def load(self, code: str) -> list[WorkflowSpec]:
        self.runtime = Runtime(
            capabilities=self.capabilities,
            output=lambda stream, text: self.logs.append((stream, text)),
            context={"workdir": str(self.workdir), "state_store": Store(self.workdir / "s.db")},
        )
        self.runtime.execute(code, "test.lua")
        return collect(self.runtime)

    def run(self, code: str, workflow: str | None = None, **engine: Any) -> RunResult:
        specs = self.load(code)
        spec = specs[0] if workflow is None else next(s for s in specs if s.name == workflow)
        assert self.runtime is not None
        runner = Engine(
            self.runtime,
            sleep=self.sleeps.append,
            listener=self.events.append,
            **engine,
        )
        return runner.run(spec)

    def texts(self, stream: str = "info") -> list[str]:
        return [text for s, text in self.logs if s == stream]

    def lua_global(self, name: str) -> Any:
        assert self.runtime is not None
        return self.runtime.get_global(name)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(workdir=tmp_path)
