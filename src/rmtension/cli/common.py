"""Options and output helpers shared by several commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Callable, Iterator

from rmtension.files import check_out_dir, check_out_file  # re-exported: commands import them from here


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="local data directory laid out like ../shared/data (default: $RMTENSION_DATA_DIR); "
        "named sources are looked up there first, then on the Hugging Face hub",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json`` and ``--quiet``, the two other ways every command that prints a result can print it.

    The rule (``rmtension.cli.main`` enforces it for every command): without either flag stdout holds
    the readable result; with ``--json`` stdout holds exactly one JSON document and anything else a
    library prints goes to stderr; with ``--quiet`` stdout stays empty (the files are still written,
    errors still reach stderr, the exit status tells success). Progress bars are always on stderr.
    """
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true",
                   help="print exactly one JSON document on stdout instead of a readable summary")
    g.add_argument("--quiet", "-q", action="store_true",
                   help="print nothing on stdout and no progress bars (errors still go to stderr)")


def add_progress(p: argparse.ArgumentParser) -> None:
    """The one progress rule of every command that runs a model: bars on stderr when it is a terminal,
    hidden by ``--no-progress`` or ``--quiet``."""
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="progress bars on stderr while it is a terminal (default); --no-progress hides them")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether this command may draw progress bars (a bar still needs stderr to be a terminal)."""
    return bool(getattr(args, "progress", True)) and not getattr(args, "quiet", False)


def add_hidden_alias(p: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, dest: str,
                     **kwargs: Any) -> None:
    """An old spelling of an option that keeps working but is not shown in ``--help``.

    Why: one idea has one flag across commands (``--top-percent``, ``--match``, ``--seed``,
    ``--data``); scripts written against the old spelling must not break. ``default=SUPPRESS`` so
    that the alias never overwrites the visible option's default."""
    p.add_argument(flag, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


_RESULT_STREAM: list[Any] = []


def result_stream() -> Any:
    """Where a command's result goes: the real stdout, also while ``--json`` sends stray prints to stderr."""
    return _RESULT_STREAM[-1] if _RESULT_STREAM else sys.stdout


@contextlib.contextmanager
def output_rules(args: argparse.Namespace) -> Iterator[None]:
    """Run a command under the stdout rule of :func:`add_json`.

    ``--json``: stdout is redirected to stderr (an HF Trainer log dict, a library's notice), and
    only :func:`print_json` writes to the real stdout. ``--quiet``: stdout goes nowhere. Otherwise
    stdout is left alone; commands that drive chatty libraries wrap them in
    :func:`library_output_to_stderr` themselves."""
    if getattr(args, "json", False):
        _RESULT_STREAM.append(sys.stdout)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
        finally:
            _RESULT_STREAM.pop()
    elif getattr(args, "quiet", False):
        with open(os.devnull, "w") as sink:
            _RESULT_STREAM.append(sink)
            try:
                with contextlib.redirect_stdout(sink):
                    yield
            finally:
                _RESULT_STREAM.pop()
    else:
        yield


@contextlib.contextmanager
def library_output_to_stderr() -> Iterator[None]:
    """Send what libraries print while they work (HF Trainer's log dicts, notices) to stderr, so that
    stdout holds only this command's result."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def print_json(obj: Any) -> None:
    """The command's one JSON document (strict JSON: NaN becomes null) on the result stream."""
    from rmtension.files import jsonable  # numpy: only when a result is printed

    out = result_stream()
    json.dump(jsonable(obj), out, indent=2, sort_keys=False, default=str)
    out.write("\n")
    out.flush()


def emit(args: argparse.Namespace, obj: Any, text: str | Callable[[], str]) -> None:
    """Print a command's result: ``obj`` as JSON under ``--json``, else the readable ``text``."""
    if getattr(args, "json", False):
        print_json(obj)
    elif not getattr(args, "quiet", False):
        print(text() if callable(text) else text, file=result_stream(), flush=True)


# Output paths are checked by rmtension.files.check_out_dir / check_out_file (training checks them too).
