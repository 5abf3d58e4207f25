"""The ``slothlab`` command line (and its ``sloth-runner`` alias), thin over the library.

Each command lives in its own module and is added to the group here; heavy imports happen
inside the commands, so ``slothlab --help`` stays fast.
"""

from __future__ import annotations

import click

from slothlab import __version__
from slothlab.cli._agent import agent_group
from slothlab.cli._cluster import COMMANDS as _CLUSTER_COMMANDS
from slothlab.cli._config import config_group
from slothlab.cli._lua import lua_command
from slothlab.cli._master import master_command
from slothlab.cli._metrics import metrics_group
from slothlab.cli._metrics_history import attach as _attach_history_commands
from slothlab.cli._run import run_command
from slothlab.cli._state import state_group

__all__ = ["main", "sloth_runner"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slothlab")
def main() -> None:
    """slothlab: run Lua and shell tasks, keep state and metrics, drive workflows."""


main.add_command(agent_group)
main.add_command(config_group)
main.add_command(lua_command)
main.add_command(master_command)
main.add_command(metrics_group)
_attach_history_commands(metrics_group)
main.add_command(run_command)
main.add_command(state_group)
for _command in _CLUSTER_COMMANDS:  # up, down, status, agents, exec, tasks, logs
    main.add_command(_command)


def sloth_runner() -> None:
    """Entry point of the ``sloth-runner`` alias: slothlab's commands, and sloth-runner's words.

    ``sloth-runner run -f FILE``, ``agent list``, ``agent exec``, ``server``, ``version``... are
    translated (see :mod:`slothlab.cli._sloth_runner`); what slothlab lacks is named as such.
    """
    from slothlab.cli._sloth_runner import run_alias

    run_alias(main)
