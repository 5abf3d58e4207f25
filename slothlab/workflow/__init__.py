"""Workflows in sloth-runner's Lua DSL, run locally: dependencies, parallel branches, retries.

>>> from slothlab.workflow import parse_duration
>>> parse_duration("2m")
120.0
"""

from __future__ import annotations

from slothlab.workflow.dsl import collect, parse_task, parse_workflow
from slothlab.workflow.durations import parse_duration
from slothlab.workflow.engine import Engine, TaskEvent, topological_order, validate
from slothlab.workflow.model import RunResult, TaskResult, TaskSpec, TaskStatus, WorkflowSpec
from slothlab.workflow.runner import load_file, run_file, select_workflow

__all__ = [
    "Engine",
    "RunResult",
    "TaskEvent",
    "TaskResult",
    "TaskSpec",
    "TaskStatus",
    "WorkflowSpec",
    "collect",
    "load_file",
    "parse_duration",
    "parse_task",
    "parse_workflow",
    "run_file",
    "select_workflow",
    "topological_order",
    "validate",
]
