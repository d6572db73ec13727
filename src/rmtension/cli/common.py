"""Options and output helpers shared by several commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="local data directory laid out like ../shared/data (default: $RMTENSION_DATA_DIR); "
        "named sources are looked up there first, then on the Hugging Face hub",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a readable summary")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
