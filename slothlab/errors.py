"""The one exception root of slothlab and the tree under it.

::

    SlothlabError                  every error slothlab raises on purpose
    ├── ConfigError                a bad setting or settings file
    │   └── FeatureError           an unknown feature flag, or one that cannot be enabled
    ├── MissingDependencyError     an optional extra is not installed (names the pip command)
    ├── NotebookError              a notebook magic got bad input (an unknown -i name, ...)
    ├── LuaError                   a Lua chunk failed: chunk name, line and Lua traceback
    │   ├── LuaSyntaxError         the chunk did not compile
    │   ├── LuaTimeoutError        the CPU budget or wall-clock limit ran out
    │   └── LuaMemoryError         the memory cap was reached
    ├── MetricsError               the metrics part refused an operation
    │   ├── MetricNameError        a metric or tag name is invalid (says what is allowed)
    │   ├── CustomMetricError      a custom metric update was refused (type, value, tags)
    │   ├── AlertError             an alert rule is malformed or an alert operation was refused
    │   └── HistoryError           the metrics history refused an operation or an input
    │       └── HistoryLockedError another process holds the history file (names it)
    ├── StateError                 the state store refused an operation
    │   ├── StateCorruptError      the store file is not a database or is malformed
    │   ├── StateFullError         the disk holding the store is full
    │   ├── StateTypeError         an operation met a value of the wrong type
    │   └── LockError              a lock could not be taken, renewed or released
    ├── WorkflowError              a workflow is malformed (cycle, unknown dependency, ...)
    ├── ClientError                an agent or the master refused a request or could not be reached
    │   └── AgentUnreachableError  no answer in time: refused connection, timeout, reset
    ├── ClusterError               the local cluster (slothlab up/down) could not start or stop
    ├── AgentError                 the agent refused an operation
    │   ├── AgentBusyError         over its resource limits, queue full or shutting down
    │   └── TaskNotFoundError      no task with that id (never submitted, or forgotten)
    ├── MasterError                the master refused an operation
    │   ├── UnknownAgentError      no agent is registered under that name
    │   ├── UnknownStrategyError   no balancer strategy of that name (names the known ones)
    │   └── NoAgentError           no agent could take a task (says which were tried and why)
    └── AnalyticsError             analytics got input it cannot use
        ├── UnknownDetectorError   no anomaly detector of that name (names the known ones)
        └── NabDataError           NAB benchmark data or scores are missing or malformed

Every message says what was wrong and, where it can, what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AgentBusyError",
    "AgentError",
    "AgentUnreachableError",
    "AlertError",
    "AnalyticsError",
    "ClientError",
    "ClusterError",
    "ConfigError",
    "CustomMetricError",
    "FeatureError",
    "HistoryError",
    "HistoryLockedError",
    "LockError",
    "LuaError",
    "LuaMemoryError",
    "LuaSyntaxError",
    "LuaTimeoutError",
    "MasterError",
    "MetricNameError",
    "MetricsError",
    "MissingDependencyError",
    "NabDataError",
    "NoAgentError",
    "NotebookError",
    "SlothlabError",
    "StateCorruptError",
    "StateError",
    "StateFullError",
    "StateTypeError",
    "TaskNotFoundError",
    "UnknownAgentError",
    "UnknownDetectorError",
    "UnknownStrategyError",
    "WorkflowError",
]


class SlothlabError(Exception):
    """Root of every error slothlab raises on purpose."""


class ConfigError(SlothlabError):
    """A setting or the settings file is invalid."""


class FeatureError(ConfigError, KeyError):
    """A feature flag is unknown (the message lists the known ones) or cannot be enabled."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(SlothlabError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package} is not installed; install it with: pip install 'slothlab[{extra}]'"
        )


class NotebookError(SlothlabError):
    """A notebook magic got bad input: an unknown ``-i`` variable, a bad name, a bad flag."""


class LuaError(SlothlabError):
    """A Lua chunk failed.

    Attributes:
        message: the Lua error message, one line where possible.
        chunk: the chunk name (``cell``, a file name, ...), or ``None``.
        line: the line in the chunk where the error was raised, or ``None``.
        traceback: the Lua traceback as text ("" when there is none).
    """

    def __init__(
        self,
        message: str,
        *,
        chunk: str | None = None,
        line: int | None = None,
        traceback: str = "",
    ) -> None:
        self.message = message
        self.chunk = chunk
        self.line = line
        self.traceback = traceback
        super().__init__(message)


class LuaSyntaxError(LuaError):
    """The chunk did not compile."""


class LuaTimeoutError(LuaError):
    """The chunk ran past its CPU budget or wall-clock limit."""


class LuaMemoryError(LuaError):
    """The chunk reached the runtime's memory cap."""


class MetricsError(SlothlabError):
    """The metrics part (collector, history, health, alerts) refused an operation."""


class AlertError(MetricsError, ValueError):
    """An alert rule is malformed, or an alert operation (ack, resolve) was refused."""


class MetricNameError(MetricsError, ValueError):
    """A metric or tag name is not valid; the message says what is allowed."""


class CustomMetricError(MetricsError, ValueError):
    """A custom metric update was refused: wrong type for the name, bad value or tags."""


class HistoryError(MetricsError):
    """The metrics history refused an operation or an input; the message says what to fix."""


class HistoryLockedError(HistoryError):
    """Another process holds the history file: DuckDB allows one opener per file.

    Attributes:
        path: the history file.
        pid: the process holding it, or ``None`` when DuckDB did not say.
        command: that process's command line (via psutil), or "" when unknown.
    """

    def __init__(self, message: str, *, path: str, pid: int | None, command: str = "") -> None:
        self.path = path
        self.pid = pid
        self.command = command
        super().__init__(message)


class StateError(SlothlabError):
    """The state store refused an operation."""


class StateCorruptError(StateError):
    """The store file is not a database or is malformed; it was left untouched."""


class StateFullError(StateError):
    """The disk holding the store is full; nothing was written."""


class StateTypeError(StateError):
    """An operation met a value of the wrong type (e.g. increment of a string)."""


class LockError(StateError):
    """A lock could not be taken, renewed or released."""


class WorkflowError(SlothlabError):
    """A workflow definition is malformed (a cycle, an unknown dependency, a bad field)."""


class ClientError(SlothlabError):
    """A request to an agent or the master failed; the message names the server and what happened.

    Attributes:
        server: who was asked (``"agent web-1 at http://..."``, ``"master at http://..."``).
        status: the HTTP status of the answer, or ``None`` when there was none.
        code: the error body's ``code`` (``"not_found"``, ``"unauthorized"``, ...), or "".
    """

    def __init__(
        self, message: str, *, server: str = "", status: int | None = None, code: str = ""
    ) -> None:
        self.server = server
        self.status = status
        self.code = code
        super().__init__(message)


class AgentUnreachableError(ClientError):
    """No answer: the connection was refused or reset, or the deadline passed."""


class ClusterError(SlothlabError):
    """The local cluster could not be started or stopped; the message says why and what to do."""


class AgentError(SlothlabError):
    """The agent refused an operation; the message says what to do."""


class AgentBusyError(AgentError):
    """The agent takes no new task now: over a resource limit, queue full, or shutting down.

    Attributes:
        status: the HTTP status to answer with (503, or 429 for a full queue).
        retry_after_s: when to try again, in seconds.
    """

    def __init__(self, message: str, *, status: int = 503, retry_after_s: float = 1.0) -> None:
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)


class TaskNotFoundError(AgentError, KeyError):
    """No task has that id: it was never submitted here, or its result was forgotten."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MasterError(SlothlabError):
    """The master refused an operation; the message says what to do."""


class UnknownAgentError(MasterError, KeyError):
    """No agent is registered under that name (an agent heartbeating gets 404 and re-registers)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownStrategyError(MasterError, KeyError):
    """No load-balancing strategy is registered under that name; the message lists known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NoAgentError(MasterError):
    """No agent could take a task: none matched, or every one tried failed before it started."""


class AnalyticsError(SlothlabError):
    """Analytics got input it cannot use (bad series, bad parameters)."""


class UnknownDetectorError(AnalyticsError, KeyError):
    """No anomaly detector is registered under that name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NabDataError(AnalyticsError):
    """NAB benchmark data, labels or scores are missing or malformed."""
