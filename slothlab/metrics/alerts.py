"""Alert rules over metric values, an alert manager with a lifecycle, acknowledgement and history.

An :class:`AlertRule` compares a metric (or a callable value source) with a threshold. Like
Prometheus, a rule with a ``for_s`` duration makes an alert *pending* first; it *fires* only
when the condition has held that long, and is *resolved* when it stops holding. A person can
*acknowledge* a firing alert: it is then not notified again until it resolves. Manual alerts
(``metrics.alert(name, {level=, message=})`` in Lua) fire at once through
:meth:`AlertManager.raise_manual`. State and history live in SQLite, so they survive restarts.

>>> clock = iter([0.0, 30.0, 60.0]).__next__
>>> manager = AlertManager(clock=clock)
>>> manager.add_rule(AlertRule("HighLoad", "load1", ">", 4, for_s=60))
>>> [a.state for a in manager.evaluate({"load1": 9.5})]
['pending']
>>> manager.evaluate({"load1": 9.0})
[]
>>> [(a.state, a.annotations["summary"]) for a in manager.evaluate({"load1": 8.0})]
[('firing', 'HighLoad: load1 is 8 (> 4)')]
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slothlab._types import Clock
from slothlab.errors import AlertError
from slothlab.metrics._alert_rules import (
    LEVELS,
    OPERATORS,
    AlertRule,
    AlertState,
    MetricValues,
    Series,
    parse_series,
    rules_from_config,
    series_key,
    to_series,
)
from slothlab.metrics._alert_rules import (
    Op as Op,  # not in __all__, but importable from here as before
)
from slothlab.metrics._alert_store import AlertEvent, AlertStore
from slothlab.metrics._timefmt import ZERO_TIME, rfc3339
from slothlab.metrics.notify import Notification, Notifier

__all__ = [
    "LEVELS",
    "OPERATORS",
    "Alert",
    "AlertEvent",
    "AlertManager",
    "AlertRule",
    "AlertState",
    "MetricValues",
    "parse_series",
    "rules_from_config",
    "series_key",
]

log = logging.getLogger("slothlab.alerts")

_LUA_FIELDS = {"name", "level", "message", "timestamp", "source"}


# -- alerts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One alert instance (a rule and one series, or a manual alert), as seen at one moment.

    Attributes:
        fingerprint: a stable id from the name and labels.
        name: the rule or manual alert name.
        state: ``pending``, ``firing``, ``acknowledged`` or ``resolved``.
        labels: ``alertname``, ``severity``, the series' labels and the rule's labels.
        annotations: ``summary`` and ``description``.
        value: the latest value (manual alerts: None).
        active_at: when the condition first held.
        fired_at: when it started firing.
        resolved_at: when it resolved.
        acked_by, acked_at, ack_note: who acknowledged it, when, and why.
        manual: raised by hand (``raise_manual``) rather than by a rule.
    """

    fingerprint: str
    name: str
    state: AlertState
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: float | None
    active_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    acked_by: str | None = None
    acked_at: float | None = None
    ack_note: str | None = None
    last_notified_at: float | None = None
    manual: bool = False

    @property
    def severity(self) -> str:
        """The ``severity`` label."""
        return self.labels.get("severity", "warning")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with RFC 3339 times next to the epoch ones."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["labels"], data["annotations"] = dict(self.labels), dict(self.annotations)
        data["starts_at"] = rfc3339(self.fired_at or self.active_at)
        data["ends_at"] = rfc3339(self.resolved_at) if self.resolved_at else None
        return data

    def to_webhook(self) -> dict[str, Any]:
        """This alert in Alertmanager's webhook shape (``status``, ``startsAt``, ...)."""
        return {
            "status": "resolved" if self.state == "resolved" else "firing",
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.fired_at or self.active_at),
            "endsAt": rfc3339(self.resolved_at) if self.resolved_at else ZERO_TIME,
            "generatorURL": "",
            "fingerprint": self.fingerprint,
        }


def _fingerprint(labels: Mapping[str, str]) -> str:
    return _fingerprint_items(tuple(sorted(labels.items())))


@functools.lru_cache(maxsize=65536)
def _fingerprint_items(items: tuple[tuple[str, str], ...]) -> str:
    text = json.dumps(dict(items), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _annotations(rule: AlertRule, labels: Mapping[str, str], value: float) -> dict[str, str]:
    annotations = {"summary": rule.render(rule.summary, labels, value)}
    if rule.description:
        annotations["description"] = rule.render(rule.description, labels, value)
    return annotations


def _public_state(row: Mapping[str, Any]) -> AlertState:
    if row["state"] == "firing" and row.get("acked_at") is not None:
        return "acknowledged"
    state: AlertState = row["state"]
    return state


def _to_alert(row: Mapping[str, Any]) -> Alert:
    fields = {k: row[k] for k in Alert.__dataclass_fields__ if k in row and k != "state"}
    return Alert(state=_public_state(row), **fields)


class AlertManager:
    """Evaluates rules, keeps alert states, sends notifications and keeps a history.

    Args:
        rules: the rules to start with.
        path: the SQLite file of states and history (None: in memory, lost at exit). Active
            alerts are loaded back from it, so a restart neither forgets nor re-notifies them.
        notifiers: where notifications go (see :mod:`slothlab.metrics.notify`).
        clock: wall-clock seconds (default ``time.time``).
        repeat_interval_s: a firing alert that nobody acknowledged is notified again this
            often (Alertmanager's ``repeat_interval``).
        max_events: history entries kept.
    """

    def __init__(
        self,
        rules: Iterable[AlertRule] = (),
        *,
        path: str | Path | None = None,
        notifiers: Iterable[Notifier] = (),
        clock: Clock = time.time,
        repeat_interval_s: float = 4 * 3600.0,
        max_events: int = 10_000,
    ) -> None:
        self.clock = clock
        self.repeat_interval_s = repeat_interval_s
        self.notifiers: list[Notifier] = list(notifiers)
        self._store = AlertStore(path, max_events=max_events)
        self._rules: dict[str, AlertRule] = {}
        self._lock = threading.RLock()
        self._active: dict[str, dict[str, Any]] = {
            row["fingerprint"]: row for row in self._store.load(("pending", "firing"), 100_000)
        }
        for rule in rules:
            self.add_rule(rule)

    # -- rules ------------------------------------------------------------------------------------

    def add_rule(self, rule: AlertRule) -> None:
        """Add a rule (names are unique)."""
        with self._lock:
            if rule.name in self._rules:
                raise AlertError(f"an alert rule named {rule.name!r} exists; names are unique")
            self._rules[rule.name] = rule

    def remove_rule(self, name: str, now: float | None = None) -> None:
        """Remove a rule; its active alerts resolve (and are notified as resolved)."""
        now = self.clock() if now is None else now
        with self._lock:
            if name not in self._rules:
                raise AlertError(f"no alert rule named {name!r}; rules: {sorted(self._rules)}")
            del self._rules[name]
            changed = [
                self._resolve(fp, now)
                for fp, row in list(self._active.items())
                if row["name"] == name and not row["manual"]
            ]
        self._send([a for a in changed if a is not None], now)

    @property
    def rules(self) -> dict[str, AlertRule]:
        """The rules by name (a copy)."""
        with self._lock:
            return dict(self._rules)

    # -- evaluation -------------------------------------------------------------------------------

    def evaluate(self, values: MetricValues, now: float | None = None) -> list[Alert]:
        """Evaluate every rule on ``values``; return the alerts whose state changed.

        ``values`` maps series keys (``name`` or ``name{label="v"}``) to numbers, or is an
        iterable of :class:`~slothlab.metrics.sample.Sample` (their host becomes a label).
        A rule whose metric is absent from ``values`` is skipped (its alerts keep their
        state); an alert whose series vanished while its metric is present resolves.
        """
        now = self.clock() if now is None else now
        series = to_series(values)
        with self._lock, self._store.transaction():  # one commit for the whole evaluation
            changed: list[Alert] = []
            by_rule: dict[str, list[str]] = {}
            for fp, row in self._active.items():
                if not row["manual"]:
                    by_rule.setdefault(row["name"], []).append(fp)
            for rule in self._rules.values():
                active = by_rule.get(rule.name, [])
                changed.extend(self._evaluate_rule(rule, series, active, now))
            repeats = self._repeats(now)
            notifications = self._mark_sent(changed + repeats, now)
        self._dispatch(notifications)
        return changed

    def _evaluate_rule(
        self, rule: AlertRule, series: Series, active: list[str], now: float
    ) -> list[Alert]:
        try:
            matched = rule.matches(series)
        except Exception as exc:  # a value source that fails is "no data", not a crash
            log.warning("alert rule %r: value source failed: %s", rule.name, exc)
            return []
        if matched is None:
            return []
        changed, seen = [], set()
        for series_labels, value in matched:
            labels = {
                **series_labels,
                **rule.labels,
                "alertname": rule.name,
                "severity": rule.severity,
            }
            fp = _fingerprint(labels)
            seen.add(fp)
            alert = self._step(rule, fp, labels, value, now)
            if alert is not None:
                changed.append(alert)
        for fp in active:
            if fp not in seen and fp in self._active:
                alert = self._clear(fp, now)
                if alert is not None:
                    changed.append(alert)
        return changed

    def _step(
        self, rule: AlertRule, fp: str, labels: dict[str, str], value: float, now: float
    ) -> Alert | None:
        row = self._active.get(fp)
        if not rule.holds(value):
            return self._clear(fp, now) if row is not None else None
        if row is None:
            row = {
                "fingerprint": fp,
                "name": rule.name,
                "labels": labels,
                "state": "pending",
                "active_at": now,
                "manual": False,
            }
            self._active[fp] = row
        row["value"] = value
        if row["state"] == "pending" and now - row["active_at"] >= rule.for_s:
            row["state"], row["fired_at"] = "firing", now
            row["annotations"] = _annotations(rule, labels, value)
            return self._commit(row, "firing", now)
        if row["state"] == "pending" and row["active_at"] == now:
            row["annotations"] = _annotations(rule, labels, value)
            return self._commit(row, "pending", now)
        return None  # no change: the store is written (and templates filled) on changes only

    def _clear(self, fp: str, now: float) -> Alert | None:
        row = self._active[fp]
        if row["state"] == "pending":  # it never fired: drop it quietly
            del self._active[fp]
            row["state"], row["resolved_at"] = "inactive", now
            self._store.save(row)
            self._store.add_event(
                now, fp, row["name"], "inactive", "inactive", row.get("value"), ""
            )
            return None
        return self._resolve(fp, now)

    def _resolve(self, fp: str, now: float) -> Alert | None:
        row = self._active.pop(fp, None)
        if row is None:
            return None
        row["state"], row["resolved_at"] = "resolved", now
        return self._commit(row, "resolved", now)

    def _commit(self, row: dict[str, Any], event: str, now: float, detail: str = "") -> Alert:
        self._store.save(row)
        self._store.add_event(
            now, row["fingerprint"], row["name"], event, row["state"], row.get("value"), detail
        )
        return _to_alert(row)

    def _repeats(self, now: float) -> list[Alert]:
        due = []
        for row in self._active.values():
            last = row.get("last_notified_at")
            if row["state"] != "firing" or row.get("acked_at") is not None or last is None:
                continue
            if now - last >= self.repeat_interval_s:
                due.append(_to_alert(row))
        return due

    # -- manual alerts, ack, resolve -------------------------------------------------------------

    def raise_manual(
        self,
        name: str,
        level: str = "warning",
        message: str = "",
        labels: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> Alert:
        """Fire an alert by hand (Lua's ``metrics.alert``); it stays until :meth:`resolve`.

        Raising the same name and labels again updates the message; it notifies again only
        when the level changed or the repeat interval passed, and not when acknowledged.
        """
        if level not in LEVELS:
            raise AlertError(f"alert level {level!r} is not one of {', '.join(LEVELS)}")
        if not isinstance(name, str) or not name.strip():
            raise AlertError("a manual alert needs a non-empty name")
        now = self.clock() if now is None else now
        full = {
            **{str(k): str(v) for k, v in (labels or {}).items()},
            "alertname": name,
            "severity": level,
        }
        identity = {k: v for k, v in full.items() if k != "severity"}
        fp = _fingerprint(identity)
        with self._lock, self._store.transaction():
            row = self._active.get(fp)
            renotify = row is not None and row["labels"].get("severity") != level
            if row is None:
                row = {
                    "fingerprint": fp,
                    "name": name,
                    "state": "firing",
                    "active_at": now,
                    "fired_at": now,
                    "manual": True,
                    "value": None,
                }
                self._active[fp] = row
                renotify = True
            row["labels"], row["annotations"] = full, {"summary": message or name}
            alert = self._commit(row, "firing" if renotify else "raised", now, message)
        if renotify and row.get("acked_at") is None:
            self._send([alert], now)
        return alert

    def lua_hook(self) -> Callable[[Mapping[str, Any]], None]:
        """A function for the Lua runtime's ``alerts`` context hook (``metrics.alert``).

        It takes the alert table Lua built (``name``, ``level``, ``message`` and any other
        fields) and raises a manual alert; other scalar fields become labels.

        >>> manager = AlertManager(clock=lambda: 0.0)
        >>> manager.lua_hook()({"name": "backup", "level": "warn", "message": "slow", "db": "a"})
        >>> [(a.name, a.severity, a.labels["db"]) for a in manager.active()]
        [('backup', 'warning', 'a')]
        """

        def hook(fields: Mapping[str, Any]) -> None:
            level = str(fields.get("level", "warning")).lower()
            level = {"warn": "warning", "crit": "critical", "err": "error"}.get(level, level)
            labels = {
                str(k): str(v)
                for k, v in fields.items()
                if k not in _LUA_FIELDS and isinstance(v, str | int | float | bool)
            }
            self.raise_manual(str(fields["name"]), level, str(fields.get("message", "")), labels)

        return hook

    def ack(self, target: str, by: str, note: str = "", now: float | None = None) -> list[Alert]:
        """Acknowledge the firing alert(s) of ``target`` (a fingerprint or a name).

        An acknowledged alert is not notified again until it resolves.
        """
        if not isinstance(by, str) or not by.strip():
            raise AlertError("say who acknowledges: ack(target, by='alice')")
        now = self.clock() if now is None else now
        with self._lock, self._store.transaction():
            rows = self._find(target, ("firing",))
            for row in rows:
                row["acked_by"], row["acked_at"], row["ack_note"] = by, now, note
            return [
                self._commit(r, "acknowledged", now, f"{by}: {note}".rstrip(": ")) for r in rows
            ]

    def resolve(self, target: str, now: float | None = None) -> list[Alert]:
        """Resolve the active alert(s) of ``target`` (a fingerprint or a name) by hand."""
        now = self.clock() if now is None else now
        with self._lock, self._store.transaction():
            rows = self._find(target, ("pending", "firing"))
            alerts = [a for r in rows if (a := self._resolve(r["fingerprint"], now)) is not None]
        self._send(alerts, now)
        return alerts

    def _find(self, target: str, states: tuple[str, ...]) -> list[dict[str, Any]]:
        rows = [
            r
            for fp, r in self._active.items()
            if (fp == target or r["name"] == target) and r["state"] in states
        ]
        if not rows:
            active = sorted({f"{r['name']} ({r['state']})" for r in self._active.values()})
            active = active or ["none"]
            raise AlertError(
                f"no {'/'.join(states)} alert {target!r}; active alerts: {', '.join(active)}"
            )
        return rows

    # -- reading ----------------------------------------------------------------------------------

    def active(self) -> list[Alert]:
        """Pending, firing and acknowledged alerts."""
        with self._lock:
            return sorted(
                (_to_alert(r) for r in self._active.values()), key=lambda a: (a.name, a.fingerprint)
            )

    def alerts(self, limit: int = 1000) -> list[Alert]:
        """Every alert the store remembers (active and resolved), newest first."""
        rows = self._store.load(("pending", "firing", "resolved"), limit)
        return [_to_alert(r) for r in rows]

    def history(self, name: str | None = None, limit: int = 100) -> list[AlertEvent]:
        """Lifecycle events (pending, firing, acknowledged, resolved, ...), oldest first."""
        return self._store.events(name, limit)

    # -- notifications ----------------------------------------------------------------------------

    def _send(self, alerts: list[Alert], now: float) -> None:
        with self._lock, self._store.transaction():
            notifications = self._mark_sent(alerts, now)
        self._dispatch(notifications)

    def _mark_sent(self, alerts: list[Alert], now: float) -> list[Notification]:
        """Record the notification time of firing alerts; group what to send by status."""
        to_send = [a for a in alerts if a.state in ("firing", "resolved")]
        firing = [a.fingerprint for a in to_send if a.fingerprint in self._active]
        for fp in firing:
            self._active[fp]["last_notified_at"] = now
        if firing:
            self._store.mark_notified(firing, now)
        batches = (
            Notification(status, tuple(a for a in to_send if a.state == status), now)
            for status in ("firing", "resolved")
        )
        return [n for n in batches if n.alerts]

    def _dispatch(self, notifications: list[Notification]) -> None:
        for notification in notifications:
            for notifier in self.notifiers:
                try:
                    notifier.notify(notification)
                except Exception:  # one broken notifier must not stop evaluation or the others
                    log.exception("alert notifier %r failed", notifier)

    def close(self) -> None:
        """Close the store and every notifier that can be closed."""
        for notifier in self.notifiers:
            close = getattr(notifier, "close", None)
            if callable(close):
                close()
        self._store.close()

    def __enter__(self) -> AlertManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
