"""Shared fixtures: an isolated conversion cache per test session, default limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interactive_format.config import Limits

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A fresh conversion cache: every session proves the one-time conversions work."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def limits() -> Limits:
    return Limits()
