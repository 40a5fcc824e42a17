"""Every command documents itself: a help text that ends with an example."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from provaudit.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        path = prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


COMMANDS = list(_commands(main))


def test_the_cli_has_every_area() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    for expected in ("scan", "register", "converge", "trend", "label-origin", "checkpoints", "compare",
                     "lineage find", "erase", "overlap", "checkpoint add", "detector train",
                     "detector eval", "origin tag", "diversity"):
        assert expected in names, expected


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_has_help_with_an_example(path: tuple[str, ...], cmd: click.Command) -> None:
    assert cmd.help and len(cmd.help.strip()) > 40, f"{' '.join(path)} has no real help text"
    assert "Example" in cmd.help, f"{' '.join(path)} help has no Example block"
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output
