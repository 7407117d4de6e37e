"""One duration grammar for the claims options and the service settings (jotkit.parse_timespan)."""

from __future__ import annotations

import math
from typing import Any

import pytest

import jotkit
from jotkit.server.settings import Settings, SettingsError

ACCEPTED: list[tuple[Any, float]] = [
    ("15m", 900),
    ("30s", 30),
    ("7d", 604800),
    ("2w", 1209600),
    ("1h30m", 5400),
    ("1h 30m", 5400),
    ("1.5h", 5400),
    (" 15M ", 900),
    ("250ms", 0.25),
    ("90", 90),
    ("0", 0),
    ("0.5", 0.5),
    ("36500d", 36500 * 86400.0),
    (900, 900),
    (0, 0),
    (2.5, 2.5),
]
REFUSED: list[Any] = [
    "inf",
    "-inf",
    "Infinity",
    "nan",
    "NaN",
    "-5s",
    "-1",
    "+5",
    "1e3",
    "1e400",
    "1_000",
    "",
    "   ",
    "15x",
    "m15",
    "1h-",
    "15 minutes",
    "9999999999999w",
    "36600d",
    float("inf"),
    float("-inf"),
    float("nan"),
    -1,
    -0.5,
    10**400,
    1e300,
    True,
    None,
    [900],
]


@pytest.mark.parametrize(("spelling", "seconds"), ACCEPTED, ids=[repr(a) for a, _ in ACCEPTED])
def test_duration_spelling_accepted_identically_by_claims_and_settings(spelling, seconds):
    assert jotkit.parse_timespan(spelling) == pytest.approx(seconds)
    settings = Settings.from_env({"JOTKIT_REUSE_GRACE": spelling})
    assert settings.reuse_grace == pytest.approx(seconds)
    if seconds <= 3600:
        token = jotkit.encode({}, jotkit.Key.from_secret(b"s" * 32, "HS256"), expires_in=spelling)
        assert token.count(".") == 2


@pytest.mark.parametrize("spelling", REFUSED, ids=[repr(r)[:20] for r in REFUSED])
def test_inf_nan_negative_and_absurd_durations_refused_by_claims_and_settings(spelling):
    """An infinite or nan TTL, grace or window used to be accepted by the settings' own
    parser (the claims parser refused it): both now go through jotkit.parse_timespan."""
    with pytest.raises((ValueError, TypeError)):
        jotkit.parse_timespan(spelling)
    with pytest.raises(SettingsError):
        Settings.from_env({"JOTKIT_ACCESS_TTL": spelling})
    with pytest.raises((ValueError, TypeError)):
        jotkit.decode(
            "a.b.c",
            jotkit.Key.from_secret(b"s" * 32, "HS256"),
            algorithms=["HS256"],
            leeway=spelling,
        )


@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0, 1e12])
def test_settings_built_directly_refuse_non_finite_durations(value):
    with pytest.raises(SettingsError):
        Settings(refresh_idle_ttl=value)
