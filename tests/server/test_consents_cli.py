"""``jotkit consents list|revoke``: a consent given on the hosted page, seen and revoked by an
operator from another process while the server runs."""

from __future__ import annotations

from jotkit.server import FrozenClock

from .harness import START, Server, make_settings


def test_consents_list_and_revoke_from_the_cli(cli, tmp_path):
    assert cli("users", "add", "cora@example.com", input="s3cret-pass\n").exit_code == 0
    r = cli("clients", "add", "Photo app", "--redirect-uri", "https://photos.example/cb",
            "--public", "--json")
    assert r.exit_code == 0, r.output
    import json

    client_id = json.loads(r.output)["client_id"]
    srv = Server(make_settings(tmp_path / "data"), FrozenClock(START)).start()
    try:
        user = srv.run(srv.service.store.users.get_by_email("cora@example.com"))
        srv.run(srv.service.store.sso.grant_consent(user.id, client_id, ["openid", "email"],
                                                    START))
    finally:
        srv.stop()
    listed = cli("consents", "list", "cora@example.com")
    assert listed.exit_code == 0, listed.output
    assert client_id in listed.output and "Photo app" in listed.output
    assert "email openid" in listed.output
    r = cli("consents", "revoke", "cora@example.com", client_id)
    assert r.exit_code == 0, r.output
    assert cli("consents", "list", "cora@example.com").output.strip() == ""
    assert cli("consents", "revoke", "cora@example.com", client_id).exit_code == 1
    assert cli("consents", "list", "nobody@example.com").exit_code == 1
