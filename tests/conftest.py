"""Test set-up: never touch the network, read real data from ../shared/data, gate slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach a hub: every library is told it is offline before it is imported.
for var in ("RMTENSION_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Tests run tiny models, whose small matrix products are slower with two threads than with one
# (thread hand-off dominates, ~5× under load); RMTENSION_TEST_THREADS overrides.
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("RMTENSION_TEST_THREADS", "1")))

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()


def _slow_enabled() -> bool:
    flag = os.environ.get("RMTENSION_SLOW", "").lower()
    if flag in {"0", "false", "no"}:
        return False
    return flag in {"1", "true", "yes"} or os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(config, items):
    if _slow_enabled():
        return
    skip = pytest.mark.skip(reason="slow test: set RMTENSION_SLOW=1 (CI runs these)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _one_thread():
    """Each test starts on the suite's thread count, whatever an earlier test or library set."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("RMTENSION_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """Each test starts without a data directory set, with its own model cache."""
    monkeypatch.delenv("RMTENSION_DATA_DIR", raising=False)
    cache = os.environ.get("RMTENSION_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "rmtension-cache")
    monkeypatch.setenv("RMTENSION_CACHE", cache)
