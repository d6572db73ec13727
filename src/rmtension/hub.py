"""Guarded access to the Hugging Face hub.

Everything in rmtension works from local files first. The hub is a fallback, and it must never
hang or throw a deep library traceback on a machine without network: we check the offline
switches and probe the endpoint with a short timeout before asking any library to download.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from urllib.parse import urlparse

OFFLINE_VARS = ("RMTENSION_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_requested() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"} for v in OFFLINE_VARS)


@lru_cache(maxsize=1)
def _endpoint_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_available() -> bool:
    """True when the hub may be used: not switched off and its endpoint answers."""
    if offline_requested():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    return _endpoint_reachable(url.hostname or "huggingface.co", port)


def hub_status() -> str:
    """A short phrase for error messages saying why the hub was not used."""
    if offline_requested():
        return "the hub is switched off (offline mode is set)"
    return "the Hugging Face hub is unreachable from this machine"
