"""Health checks from plain data and files, and the default set."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from slothlab.errors import ConfigError
from slothlab.metrics.health import (
    CommandCheck,
    HealthMonitor,
    HttpCheck,
    LuaCheck,
    StaticSource,
    TcpCheck,
    ThresholdCheck,
    checks_from_config,
    checks_from_file,
    default_checks,
    parse_seconds,
)

SPECS = [
    {
        "name": "api",
        "type": "http",
        "url": "http://127.0.0.1:9/health",
        "expected_status": 200,
        "body_regex": "ok",
        "latency_warning": "500ms",
        "interval": "15s",
        "timeout": 3,
    },
    {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 5432, "failure_threshold": 5},
    {
        "name": "disk-script",
        "type": "command",
        "command": "exit 0",
        "nagios": True,
        "recovery": {"command": "echo fix", "cooldown": "10m"},
    },
    {"name": "queue", "type": "lua", "code": "return true", "success_threshold": 2},
    {"name": "load", "type": "threshold", "key": "load.load1", "warning": 4, "critical": 8},
    {"name": "cpu", "type": "system", "critical": 99},
]


def test_every_type_builds_with_its_settings() -> None:
    source = StaticSource({"cpu": {"percent": 1}, "load": {"load1": 0.2}})
    api, db, script, queue, load, cpu = checks_from_config(SPECS, source=source)
    assert isinstance(api, HttpCheck)
    assert (api.interval_s, api.timeout_s, api.latency_warning_s) == (15.0, 3.0, 0.5)
    assert isinstance(db, TcpCheck) and db.failure_threshold == 5
    assert isinstance(script, CommandCheck) and script.warning_codes == {1}
    assert script.recovery is not None and script.recovery.cooldown_s == 600.0
    assert isinstance(queue, LuaCheck) and queue.success_threshold == 2
    assert isinstance(load, ThresholdCheck) and load.run().status == "ok"
    assert isinstance(cpu, ThresholdCheck) and (cpu.warning, cpu.critical) == (85.0, 99.0)
    assert cpu.run().status == "ok"
    for check in (api, db, script, queue, load, cpu):
        check.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "tcp"}, "needs a name"),
        ({"name": "x", "type": "tcp", "host": "h", "port": 1, "colour": "red"}, "unknown keys"),
        ({"name": "x", "type": "tcp", "host": "h"}, r"check 'x' \(tcp\).*port"),
        ({"name": "x", "type": "command", "command": "true", "interval": "soon"}, "duration"),
        ({"name": "x", "type": "system", "metric": "gpu"}, "not one of cpu"),
        ({"name": "x", "type": "command", "command": "true", "recovery": "restart"}, "recovery"),
        ({"name": "x", "type": "command", "command": "true", "recovery": {"cmd": "a"}}, "cmd"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        checks_from_config([spec])


def test_duplicate_names_are_refused() -> None:
    spec = {"name": "x", "type": "command", "command": "true"}
    with pytest.raises(ConfigError, match="two health checks are named 'x'"):
        checks_from_config([spec, spec])


def test_checks_from_toml_json_and_yaml(tmp_path: Path) -> None:
    toml = tmp_path / "checks.toml"
    toml.write_text(
        '[[checks]]\nname = "ping"\ntype = "command"\ncommand = "true"\ninterval = "5s"\n'
        '[checks.recovery]\ncommand = "echo fix"\ncooldown = 30\n'
    )
    (check,) = checks_from_file(toml)
    assert check.name == "ping" and check.interval_s == 5.0
    assert check.recovery is not None and check.recovery.cooldown_s == 30.0
    as_json = tmp_path / "checks.json"
    as_json.write_text(json.dumps([{"name": "j", "type": "lua", "code": "return true"}]))
    assert [c.name for c in checks_from_file(as_json)] == ["j"]
    as_yaml = tmp_path / "checks.yaml"
    as_yaml.write_text("checks:\n  - name: y\n    type: tcp\n    host: 127.0.0.1\n    port: 80\n")
    assert [c.name for c in checks_from_file(as_yaml)] == ["y"]


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        checks_from_file(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[checks]\n")
    with pytest.raises(ConfigError, match="not valid"):
        checks_from_file(broken)
    not_list = tmp_path / "x.json"
    not_list.write_text('{"checks": 3}')
    with pytest.raises(ConfigError, match="list of checks"):
        checks_from_file(not_list)


def test_config_checks_run_against_real_things(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        specs = [
            {"name": "port", "type": "tcp", "host": "127.0.0.1", "port": port},
            {"name": "cmd", "type": "command", "command": "exit 0"},
            {
                "name": "lua",
                "type": "lua",
                "code": "return 'warning', 'meh'",
                "failure_threshold": 1,
            },
        ]
        monitor = HealthMonitor(checks_from_config(specs), clock=lambda: 0.0)
        results = monitor.tick()
    assert [r.status for r in results] == ["ok", "ok", "warning"]
    assert monitor.status() == "warning"


def test_default_checks_from_a_snapshot() -> None:
    values = {
        "cpu": {"percent": 90.0},
        "memory": {"percent": 10.0},
        "disk": {"/": {"percent": 50.0}, "/data": {"percent": 96.0}},
    }
    checks = default_checks(StaticSource(values), failure_threshold=1)
    assert [(c.name, c.run().status) for c in checks] == [
        ("cpu", "warning"),
        ("memory", "ok"),
        ("disk", "critical"),
    ]
    disk = checks[2].run()
    assert disk.details["path"] == "disk./data.percent"
    assert disk.message == "disk./data.percent = 96% (critical threshold)"


def test_default_checks_read_the_real_collector() -> None:
    from slothlab.metrics.collector import Collector

    collector = Collector(interval_s=60)  # not started: its snapshot samples once, now
    for check in default_checks(collector):
        result = check.run()
        assert 0 <= result.details["value"] <= 100, result.message


def test_missing_values_are_critical() -> None:
    (disk,) = checks_from_config([{"name": "disk", "type": "system"}], source=StaticSource({}))
    result = disk.run()
    assert result.status == "critical"
    assert "no value 'disk.*.percent'" in result.message


def test_parse_seconds() -> None:
    assert parse_seconds("1.5h") == 5400.0
    assert parse_seconds(" 10 ") == 10.0
    with pytest.raises(ConfigError, match="not a duration"):
        parse_seconds(True)
