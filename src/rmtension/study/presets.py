"""Built-in study configs shipped inside the package, run by name (``rmtension run tiny --out DIR``).

Why in the package: a config path like ``configs/tiny.yaml`` works only inside a checkout, and an
installed ``rmtension`` must be able to run its smoke study and the paper's grid anywhere. The
YAML files live in ``rmtension/configs/``; the checkout's ``configs/`` holds byte-equal copies
for people reading the repository (``tests/test_cli_rules.py`` keeps them equal).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rmtension.errors import RmtensionError


def builtin_names() -> list[str]:
    """Names of the built-in configs (the packaged ``configs/*.yaml`` without the suffix)."""
    folder = resources.files("rmtension").joinpath("configs")
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def builtin_text(name: str) -> str:
    if name not in builtin_names():
        raise RmtensionError(f"no built-in study config {name!r}; built-in: {', '.join(builtin_names())}")
    return resources.files("rmtension").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")


def builtin_config(name: str) -> dict[str, Any]:
    return yaml.safe_load(builtin_text(name))


def quickstart_config() -> dict[str, Any]:
    return builtin_config("quickstart")


def resolve_config(name_or_path: str) -> Path:
    """The study config file a command-line argument means: an existing file, else a built-in name.

    A file wins, so that a local ``tiny`` file is never shadowed. The packaged file is read from
    where the package is installed (a normal or editable install keeps it on disk)."""
    p = Path(name_or_path).expanduser()
    if p.is_file() or p.suffix in (".yaml", ".yml") or "/" in name_or_path or p.exists():
        return p  # a path (a missing one fails with "study config not found" when it is read)
    if name_or_path in builtin_names():
        return Path(str(resources.files("rmtension").joinpath("configs", f"{name_or_path}.yaml")))
    raise RmtensionError(f"study config {name_or_path!r} is neither a file nor a built-in config "
                         f"({', '.join(builtin_names())})")
