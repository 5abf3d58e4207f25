"""Alert rules: series keys, :class:`AlertRule` and rules from configuration.

The part of :mod:`slothlab.metrics.alerts` that knows nothing of alert state: how a series key
like ``disk_used_ratio{mount="/"}`` is written and parsed, what a rule compares, and how rules
are read from plain data. Import these names from :mod:`slothlab.metrics.alerts`.

>>> rule = AlertRule("Full", 'disk_used_ratio{mount="/"}', ">=", 0.9)
>>> rule.selector, rule.holds(0.95)
(('disk_used_ratio', {'mount': '/'}), True)
"""

from __future__ import annotations

import functools
import math
import operator
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from slothlab.errors import AlertError
from slothlab.metrics.sample import Sample

__all__ = [
    "LEVELS",
    "OPERATORS",
    "AlertRule",
    "AlertState",
    "MetricValues",
    "Op",
    "Series",
    "parse_series",
    "rules_from_config",
    "series_key",
    "to_series",
]

Op: TypeAlias = Literal[">", ">=", "<", "<=", "==", "!="]
AlertState: TypeAlias = Literal["pending", "firing", "acknowledged", "resolved"]
"""An alert's state; ``acknowledged`` is a firing alert someone has acknowledged."""

MetricValues: TypeAlias = Mapping[str, float] | Iterable[Sample]
"""What :meth:`AlertManager.evaluate` reads: ``{series: value}`` or samples."""

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
"""The comparison operators a rule may use."""

LEVELS = ("info", "warning", "error", "critical")
"""Severities of rules and levels of manual alerts."""

_FIELDS = {"name", "metric", "op", "threshold", "value", "labels", "severity", "for_s"}
_DEFAULT_SUMMARY = "{name}: {metric} is {value:g} ({op} {threshold:g})"


# -- series keys --------------------------------------------------------------------------------


def series_key(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The text key of one series, Prometheus style (labels sorted).

    >>> series_key("disk_used_ratio", {"mount": "/", "host": "web-1"})
    'disk_used_ratio{host="web-1",mount="/"}'
    >>> series_key("load1")
    'load1'
    """
    if not labels:
        return name
    escaped = (f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    return f"{name}{{{','.join(escaped)}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_series(key: str) -> tuple[str, dict[str, str]]:
    """Split ``name{label="value",...}`` into the name and the labels.

    >>> parse_series('disk_used_ratio{mount="/", host="a,b"}')
    ('disk_used_ratio', {'mount': '/', 'host': 'a,b'})
    """
    name, items = _parse_cached(key)
    return name, dict(items)


@functools.lru_cache(maxsize=65536)
def _parse_cached(key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    name, brace, rest = key.partition("{")
    name = name.strip()
    if not brace:
        return name, ()
    if not rest.rstrip().endswith("}"):
        raise AlertError(f'series {key!r} has no closing brace; write name{{label="value"}}')
    return name, tuple(_parse_labels(key, rest.rstrip()[:-1]).items())


def _parse_labels(key: str, body: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    i, n = 0, len(body)
    while i < n:
        eq = body.find("=", i)
        if eq < 0 or eq + 1 >= n or body[eq + 1] != '"':
            raise AlertError(f'series {key!r}: labels must look like name="value"')
        label, j, value = body[i:eq].strip().lstrip(","), eq + 2, []
        while j < n and body[j] != '"':
            if body[j] == "\\" and j + 1 < n:
                j += 1
                value.append({"n": "\n"}.get(body[j], body[j]))
            else:
                value.append(body[j])
            j += 1
        if j >= n:
            raise AlertError(f"series {key!r}: a label value is not closed with a quote")
        labels[label.strip()] = "".join(value)
        i = j + 1
        while i < n and body[i] in ", ":
            i += 1
    return labels


_Labelled: TypeAlias = list[tuple[Mapping[str, str], float]]
Series: TypeAlias = dict[str, _Labelled]
"""Values grouped by metric name: name -> [(labels, value)]."""


def to_series(values: MetricValues) -> Series:
    out: Series = {}
    if isinstance(values, Mapping):
        for key, value in values.items():
            name, items = _parse_cached(key)
            out.setdefault(name, []).append((dict(items), _number(key, value)))
        return out
    for sample in values:
        labels = {"host": sample.host, **sample.labels}
        out.setdefault(sample.metric, []).append((labels, float(sample.value)))
    return out


def _number(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AlertError(f"the value of {key!r} is not a number: {value!r}") from None


# -- rules --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRule:
    """One alert rule.

    Args:
        name: the rule (the ``alertname`` label); unique in a manager.
        metric: a series selector (``"load1"``, ``'disk_used_ratio{mount="/"}'``: the labels
            given must match) or a function of no arguments returning a value (or None for
            no data).
        op: ``">"``, ``">="``, ``"<"``, ``"<="``, ``"=="`` or ``"!="``.
        threshold: the number compared with.
        for_s: how long the condition must hold before the alert fires (0: at once).
        labels: labels added to each alert of the rule.
        severity: ``info``, ``warning``, ``error`` or ``critical`` (also a label).
        summary: a template for the summary annotation; fields ``{name}``, ``{metric}``,
            ``{op}``, ``{threshold}``, ``{value}``, ``{severity}``, ``{for_s}`` and
            ``{labels[host]}``; a missing label shows as empty.
        description: a template like ``summary``, for the description annotation.

    >>> AlertRule("Bad", "x", "=>", 1)
    Traceback (most recent call last):
    ...
    slothlab.errors.AlertError: rule 'Bad': op '=>' is not one of >, >=, <, <=, ==, !=
    """

    name: str
    metric: str | Callable[[], float | None]
    op: str
    threshold: float
    for_s: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    severity: str = "warning"
    summary: str = _DEFAULT_SUMMARY
    description: str = ""

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise AlertError("an alert rule needs a non-empty name")
        if self.op not in OPERATORS:
            raise AlertError(f"{where}: op {self.op!r} is not one of {', '.join(OPERATORS)}")
        if not _is_number(self.threshold):
            raise AlertError(f"{where}: threshold must be a number, got {self.threshold!r}")
        if not _is_number(self.for_s) or self.for_s < 0:
            raise AlertError(f"{where}: for_s must be seconds (0 or more), got {self.for_s!r}")
        if self.severity not in LEVELS:
            raise AlertError(f"{where}: severity {self.severity!r} is not one of {LEVELS}")
        if not (callable(self.metric) or (isinstance(self.metric, str) and self.metric.strip())):
            raise AlertError(f"{where}: metric must be a series name or a function")
        if isinstance(self.metric, str):
            parse_series(self.metric)
        for template in (self.summary, self.description):
            _check_template(where, template)

    @property
    def selector(self) -> tuple[str, dict[str, str]] | None:
        """``(metric name, labels to match)``, or None for a callable source."""
        return None if callable(self.metric) else parse_series(self.metric)

    def metric_text(self) -> str:
        """The metric as shown in messages."""
        if callable(self.metric):
            return getattr(self.metric, "__name__", "value")
        return self.metric

    def holds(self, value: float) -> bool:
        """True when ``value`` meets the condition (NaN never does).

        >>> AlertRule("r", "x", ">=", 0.9).holds(0.95)
        True
        """
        return not math.isnan(value) and OPERATORS[self.op](value, self.threshold)

    def matches(self, values: Series) -> _Labelled | None:
        """The ``(labels, value)`` series this rule looks at; None when its metric is absent."""
        if callable(self.metric):
            value = self.metric()
            return None if value is None else [({}, float(value))]
        name, wanted = _parse_cached(self.metric)
        named = values.get(name)
        if not named or not wanted:
            return named
        return [(ls, v) for ls, v in named if all(ls.get(k) == w for k, w in wanted)]

    def render(self, template: str, labels: Mapping[str, str], value: float | None) -> str:
        """Fill a template for one alert of this rule."""
        fields = {
            "name": self.name,
            "metric": self.metric_text(),
            "op": self.op,
            "threshold": self.threshold,
            "value": value if value is not None else math.nan,
            "labels": _Labels(labels),
            "severity": self.severity,
            "for_s": self.for_s,
        }
        try:
            return string.Formatter().vformat(template, (), fields)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            return f"{template} (template error: {exc})"


class _Labels(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def _check_template(where: str, template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise AlertError(f"{where}: template {template!r} is malformed: {exc}") from None
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        root = field_name.split(".")[0].split("[")[0]
        if root not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise AlertError(f"{where}: template field {{{root}}} is unknown; known: {known}")


def _is_number(value: Any) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(value)


def rules_from_config(specs: Iterable[Mapping[str, Any]]) -> list[AlertRule]:
    """Build rules from plain data (a TOML ``[[alerts]]`` array, JSON, YAML).

    Each spec has ``name``, then either ``metric``, ``op`` and ``threshold`` or an ``expr``
    like ``'disk_used_ratio{mount="/"} > 0.9'``; optional ``for`` (seconds or ``"5m"``),
    ``labels``, ``severity``, ``summary``, ``description``.

    >>> (rule,) = rules_from_config([{"name": "Full", "expr": "disk_used_ratio >= 0.9",
    ...                               "for": "5m", "severity": "critical"}])
    >>> rule.metric, rule.op, rule.threshold, rule.for_s
    ('disk_used_ratio', '>=', 0.9, 300.0)
    """
    from slothlab.metrics.health.config import parse_seconds

    allowed = {
        "name",
        "metric",
        "op",
        "threshold",
        "expr",
        "for",
        "for_s",
        "labels",
        "severity",
        "summary",
        "description",
    }
    rules = []
    for spec in specs:
        name = spec.get("name", "?")
        unknown = set(spec) - allowed
        if unknown:
            raise AlertError(
                f"rule {name!r}: unknown keys {sorted(unknown)}; allowed: "
                f"{', '.join(sorted(allowed))}"
            )
        args = {k: spec[k] for k in ("metric", "op", "threshold") if k in spec}
        if "expr" in spec:
            args.update(_parse_expr(name, spec["expr"]))
        for key in ("labels", "severity", "summary", "description"):
            if key in spec:
                args[key] = spec[key]
        duration = spec.get("for", spec.get("for_s", 0))
        args["for_s"] = parse_seconds(duration, f"rule {name!r} for")
        missing = {"metric", "op", "threshold"} - set(args)
        if missing:
            raise AlertError(f"rule {name!r}: missing {sorted(missing)} (or give expr=)")
        rules.append(AlertRule(name=name, **args))
    return rules


def _parse_expr(name: str, expr: Any) -> dict[str, Any]:
    if isinstance(expr, str):
        for op in (">=", "<=", "==", "!=", ">", "<"):
            left, found, right = expr.rpartition(op)
            if found and "}" not in right:
                try:
                    return {"metric": left.strip(), "op": op, "threshold": float(right)}
                except ValueError:
                    break
    raise AlertError(f"rule {name!r}: expr {expr!r} must look like 'metric{{label=\"v\"}} > 0.9'")
