"""Built-in study configs shipped inside the package (so `rmtension quickstart` needs no checkout)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def builtin_config(name: str) -> dict[str, Any]:
    text = resources.files("rmtension").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def quickstart_config() -> dict[str, Any]:
    return builtin_config("quickstart")
