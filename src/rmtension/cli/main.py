"""Entry point of the ``rmtension`` program."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import signal
import sys
import threading
import typing

import rmtension
from rmtension.cli.common import output_rules
from rmtension.errors import RmtensionError, disk_error_message


class OneLineParser(argparse.ArgumentParser):
    """argparse with the project's error contract: a bad flag or value is ONE line on stderr, exit 2.

    argparse's own ``error`` prints the whole usage block first; the line that matters (which
    option, which value) then drowns in it, and scripts that read one line get the usage instead.
    Subparsers inherit this class (``add_subparsers`` uses the parent's class).
    """

    def error(self, message: str) -> "typing.NoReturn":
        text = " ".join(str(message).split())
        self.exit(2, f"rmtension: error: {text} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rmtension",
        description="Study helpfulness/harmlessness tension inside reward models: train RMs, evaluate them on "
        "benchmarks, find and ablate objective-oriented neurons, and report.",
    )
    parser.add_argument("--version", action="version", version=f"rmtension {rmtension.__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    import rmtension.cli as cli_pkg

    for mod in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("cmd_"):
            importlib.import_module(f"rmtension.cli.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if hasattr(signal, "SIGPIPE") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `rmtension ... | head` ends quietly
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get("RMTENSION_DEBUG") == "1"
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with output_rules(args):  # --json: stdout is the one JSON document; --quiet: stdout is empty
            rc = args.func(args)
    except RmtensionError as exc:
        if debug:
            raise
        print(f"rmtension: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)  # one line, always
        return 2
    except KeyboardInterrupt:
        print("rmtension: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a full disk or a read-only folder, however a library wrapped the OSError
        message = disk_error_message(exc)
        if message is None or debug:
            raise  # anything else is a bug: keep its traceback
        print(f"rmtension: error: {message}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
