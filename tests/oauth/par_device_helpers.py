"""Register confidential / device clients straight in the store for the PAR and device tests."""

from __future__ import annotations

from jotkit.server.oauth.clients import DEVICE_CODE_GRANT, ClientRecord, new_client
from server.harness import Server

CB = "https://app.example/cb"


def add_confidential(server: Server, *, require_par: bool = False) -> tuple[ClientRecord, str]:
    """A confidential code-flow client (client_secret_basic) and its secret."""
    record, secret = new_client(
        "PAR app", now=server.clock.now(), redirect_uris=(CB,), require_par=require_par,
    )
    assert secret is not None
    server.run(server.service.store.clients.create(record))
    return record, secret


def add_device_client(server: Server, *, public: bool = True) -> tuple[ClientRecord, str | None]:
    """A client of the device grant (public by default, as CLIs are) with refresh tokens."""
    record, secret = new_client(
        "TV app", now=server.clock.now(), public=public,
        grant_types=(DEVICE_CODE_GRANT, "refresh_token"),
    )
    server.run(server.service.store.clients.create(record))
    return record, secret
