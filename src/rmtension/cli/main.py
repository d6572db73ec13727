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

import rmtension
from rmtension.errors import RmtensionError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        rc = args.func(args)
    except RmtensionError as exc:
        if debug:
            raise
        print(f"rmtension: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rmtension: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
