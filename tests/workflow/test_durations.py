from __future__ import annotations

import pytest

from slothlab.errors import WorkflowError
from slothlab.workflow import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("90", 90.0),
        (" 10s ", 10.0),
        (3, 3.0),
        (0.5, 0.5),
    ],
)
def test_parses(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "s", "10x", "1h 30m", "-5s", -1, True, None, [], "nan"])
def test_refuses_with_a_message_that_shows_the_forms(bad: object) -> None:
    with pytest.raises(WorkflowError, match=r'"30s", "2m", "1h30m"'):
        parse_duration(bad, "timeout of task build")
