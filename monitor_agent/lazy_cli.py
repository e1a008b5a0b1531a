"""A click group whose subcommands are the modules of a package, imported only when used.

Each module `pkg/<name>.py` exposes a click object named `command`, called `<name>` with `_`
turned into `-`. Importing one subcommand (not all) keeps start-up fast and the resident
memory of long-running commands (`monitor-agent run`, `seedctl console`) small.
The seed package uses this too (it may import the agent package; not the reverse).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import click


class LazyGroup(click.Group):
    def __init__(self, *args, commands_package: ModuleType, **kwargs):
        super().__init__(*args, **kwargs)
        self._package = commands_package

    def _modules(self) -> dict[str, str]:
        return {
            info.name.replace("_", "-"): info.name
            for info in pkgutil.iter_modules(self._package.__path__)
            if not info.name.startswith("_")
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._modules()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        module_name = self._modules().get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(f"{self._package.__name__}.{module_name}")
        command = getattr(module, "command", None)
        if command is not None:
            self.add_command(command, cmd_name)
        return command
