"""Settings of the bounded argon2 pool (issue 10 §2): ``JOTKIT_ARGON2_WORKERS`` >= 1,
``JOTKIT_ARGON2_QUEUE`` >= 0, defaults from the core count."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jotkit.server import Settings
from jotkit.server.hashpool import HASH_NICENESS, HashPool
from jotkit.server.settings import SettingsError


def test_argon2_pool_defaults_follow_the_core_count() -> None:
    settings = Settings.from_env({})
    cores = max(1, os.cpu_count() or 1)
    assert settings.effective_argon2_workers == cores
    assert settings.effective_argon2_queue == 4 * cores


def test_argon2_pool_settings_are_read_from_env(tmp_path: Path) -> None:
    env = {"JOTKIT_ARGON2_WORKERS": "3", "JOTKIT_ARGON2_QUEUE": "0"}
    settings = Settings.from_env(env)
    assert (settings.effective_argon2_workers, settings.effective_argon2_queue) == (3, 0)
    assert Settings.from_env({"JOTKIT_ARGON2_WORKERS": "2"}).effective_argon2_queue == 8


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOTKIT_ARGON2_WORKERS": "0"}, "JOTKIT_ARGON2_WORKERS"),
        ({"JOTKIT_ARGON2_WORKERS": "-2"}, "JOTKIT_ARGON2_WORKERS"),
        ({"JOTKIT_ARGON2_WORKERS": "many"}, "JOTKIT_ARGON2_WORKERS"),
        ({"JOTKIT_ARGON2_QUEUE": "-1"}, "JOTKIT_ARGON2_QUEUE"),
        ({"JOTKIT_ARGON2_QUEUE": "1.5"}, "JOTKIT_ARGON2_QUEUE"),
    ],
)
def test_argon2_pool_without_workers_or_with_a_negative_queue_is_refused(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_argon2_pool_bounds_are_checked_in_code_too() -> None:
    with pytest.raises(SettingsError, match="JOTKIT_ARGON2_WORKERS"):
        Settings(argon2_workers=0)
    with pytest.raises(SettingsError, match="JOTKIT_ARGON2_QUEUE"):
        Settings(argon2_queue=-1)
    with pytest.raises(ValueError):
        HashPool(0, 1)
    pool = HashPool(2, 0)
    assert pool.capacity == 2
    pool.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux")
def test_login_flood_hash_threads_yield_the_cores_to_token_checks() -> None:
    """argon2 runs below the event loop's CPU priority, so token checks go first."""
    import asyncio

    pool = HashPool(1, 0)
    try:
        inside = asyncio.run(pool.run(os.getpriority, os.PRIO_PROCESS, 0))
    finally:
        pool.close()
    assert inside == min(19, os.getpriority(os.PRIO_PROCESS, 0) + HASH_NICENESS)


def test_login_flood_shed_pacing_settings_are_read_from_env() -> None:
    """``JOTKIT_LOGIN_SHED_DELAY`` (a duration, 1 s by default, 0 answers at once) and
    ``JOTKIT_LOGIN_SHED_HELD`` (>= 0, 256 by default)."""
    default = Settings.from_env({})
    assert (default.login_shed_delay, default.login_shed_held) == (1.0, 256)
    env = {"JOTKIT_LOGIN_SHED_DELAY": "500ms", "JOTKIT_LOGIN_SHED_HELD": "0"}
    settings = Settings.from_env(env)
    assert (settings.login_shed_delay, settings.login_shed_held) == (0.5, 0)
    assert Settings.from_env({"JOTKIT_LOGIN_SHED_DELAY": "0"}).login_shed_delay == 0


@pytest.mark.parametrize(
    "env",
    [
        {"JOTKIT_LOGIN_SHED_DELAY": "2m"},
        {"JOTKIT_LOGIN_SHED_DELAY": "-1"},
        {"JOTKIT_LOGIN_SHED_DELAY": "nan"},
        {"JOTKIT_LOGIN_SHED_HELD": "-1"},
        {"JOTKIT_LOGIN_SHED_HELD": "lots"},
    ],
)
def test_login_flood_shed_pacing_out_of_range_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="JOTKIT_LOGIN_SHED"):
        Settings.from_env(env)
