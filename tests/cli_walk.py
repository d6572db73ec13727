"""Walking the CLI's parser tree: shared by the tests that check a rule on every command."""

from __future__ import annotations

import argparse
from typing import Iterator


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command path, parser) for the program and every (sub)command."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, path + (name,))


def run_main(capsys, *argv) -> tuple[int, str, str]:
    """main() in-process; argparse errors raise SystemExit, which counts as the exit code."""
    from rmtension.cli.main import main

    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err
