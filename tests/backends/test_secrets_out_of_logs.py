"""Secrets stay out of logs: an SQL error that reaches the service's last-resort handler is
logged without its bound parameters (``hide_parameters=True`` on every engine), on SQLite,
PostgreSQL and PostgreSQL + Redis. Real servers, no mocks."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

import jotkit
from jotkit.server.app import last_resort_response
from jotkit.server.store.base import KeyRecord

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_sql_error_log_line_has_no_bound_parameters(store: Any, caplog) -> None:
    key = jotkit.Key.generate("ES256", kid="dup")
    private_jwk = json.dumps(key.to_jwk(private=True))
    private_d = key.to_jwk(private=True)["d"]
    record = KeyRecord("dup", "ES256", private_jwk, 1.0, 1.0)
    await store.keys.add(record)
    with pytest.raises(Exception) as caught:  # the same kid twice: a primary-key violation
        await store.keys.add(record)
    caplog.set_level(logging.ERROR, logger="jotkit.server")
    response = last_resort_response(caught.value)  # what the service logs for an unhandled error
    assert response.status_code == 500
    assert "unhandled error" in caplog.text
    assert "IntegrityError" in caplog.text or "UniqueViolation" in caplog.text
    assert private_d not in caplog.text
    assert private_d not in str(caught.value)
    assert "hidden due to hide_parameters" in str(caught.value)
