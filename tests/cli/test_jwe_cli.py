"""`jotkit encrypt` / `jotkit decrypt` and what `jotkit decode` shows of a JWE (RFC 7516)."""

from __future__ import annotations

import json

import pytest

import jotkit
from jotkit import jwe
from jotkit.cli import build_app


@pytest.fixture(scope="module")
def app():
    return build_app(include_server=False)


@pytest.fixture(scope="module")
def ecdh():
    return jotkit.Key.generate("ECDH-ES+A256KW", kid="recipient")


@pytest.fixture
def keyfiles(tmp_path, ecdh):
    priv = tmp_path / "recipient.private.jwk"
    pub = tmp_path / "recipient.jwk"
    priv.write_text(json.dumps(ecdh.to_jwk(private=True)))
    pub.write_text(json.dumps(ecdh.public().to_jwk()))
    return priv, pub


def test_encrypt_then_decrypt_round_trip(run, keyfiles, ecdh):
    priv, pub = keyfiles
    r = run("encrypt", "--key", pub, "--text", "hello jwe", "--enc", "A128GCM")
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert token.count(".") == 4
    assert (
        jwe.decrypt(token, ecdh, algorithms=["ECDH-ES+A256KW"], encryptions=["A128GCM"])
        == b"hello jwe"
    )
    r = run("decrypt", token, "--key", priv, "--alg", "ECDH-ES+A256KW", "--enc", "A128GCM")
    assert r.exit_code == 0, r.output
    assert r.stdout == "hello jwe"
    r = run(
        "decrypt", token, "--key", priv, "--alg", "ECDH-ES+A256KW", "--enc", "A128GCM", "--json"
    )
    out = json.loads(r.stdout)
    assert out["plaintext"] == "hello jwe" and out["kid"] == "recipient"
    assert out["header"]["alg"] == "ECDH-ES+A256KW"


def test_encrypt_reads_stdin_and_json_form(run, keyfiles):
    priv, pub = keyfiles
    r = run("encrypt", "--key", pub, "--json", "--zip", input="compress me " * 20)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert "ciphertext" in doc and "header" in doc
    r = run("decrypt", "--key", priv, "--alg", "ECDH-ES+A256KW", "--enc", "A256GCM", input=r.stdout)
    assert r.exit_code == 0, r.output
    assert r.stdout == "compress me " * 20


def test_decrypt_with_a_secret_and_pbes2(run, tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("correct horse battery staple")
    r = run(
        "encrypt",
        "--secret-file",
        pw,
        "--alg",
        "PBES2-HS256+A128KW",
        "--p2c",
        "2000",
        "--text",
        "x",
    )
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    r = run(
        "decrypt", token, "--secret-file", pw, "--alg", "PBES2-HS256+A128KW", "--enc", "A256GCM"
    )
    assert r.exit_code == 0 and r.stdout == "x"


def test_decrypt_needs_allow_lists_and_reports_codes(run, keyfiles, ecdh):
    priv, _ = keyfiles
    token = jwe.encrypt(b"x", ecdh.public())
    r = run("decrypt", token, "--key", priv)
    assert r.exit_code == 2 and "--alg" in r.output
    r = run("decrypt", token, "--key", priv, "--alg", "ECDH-ES+A256KW", "--enc", "A128GCM")
    assert r.exit_code == 1 and "enc_not_allowed" in r.output
    other = jotkit.Key.generate("ECDH-ES+A256KW", kid="recipient")
    wrong = jwe.encrypt(b"x", other.public())
    r = run("decrypt", wrong, "--key", priv, "--alg", "ECDH-ES+A256KW", "--enc", "A256GCM")
    assert r.exit_code == 1 and "decryption_failed" in r.output


def test_encrypt_refuses_a_signing_key(run, tmp_path):
    path = tmp_path / "sig.jwk"
    path.write_text(json.dumps(jotkit.Key.generate("ES256").public().to_jwk()))
    r = run("encrypt", "--key", path, "--text", "x")
    assert r.exit_code == 2 and "not a JWE algorithm" in r.output


def test_decode_recognises_a_jwe_and_says_what_it_cannot_show(run, ecdh):
    token = jwe.encrypt(b'{"sub":"secret-user"}', ecdh.public(), headers={"cty": "JWT"})
    r = run("decode", token)
    assert r.exit_code == 0, r.output
    assert "JWE" in r.stdout and "cannot be shown" in r.stdout
    assert "ECDH-ES+A256KW" in r.stdout and "secret-user" not in r.stdout
    assert "jotkit decrypt" in r.stdout
    r = run("decode", token, "--json")
    info = json.loads(r.stdout)
    assert info["type"] == "JWE" and info["encrypted"] is True
    assert info["protected_header"]["cty"] == "JWT"
    assert info["tag_octets"] == 16 and "cannot_show" in info
    doc = jwe.encrypt_json(b"x", ecdh.public(), flattened=False)
    r = run("decode", json.dumps(doc), "--json")
    assert json.loads(r.stdout)["serialization"] == "json"


def test_decode_of_a_garbled_jwe_is_a_clean_error(run):
    r = run("decode", "a.b.c.d.e")
    assert r.exit_code in (1, 2) and r.output.startswith("error:")
    assert "Traceback" not in r.output


@pytest.mark.parametrize("cmd", ["encrypt", "decrypt"])
def test_jwe_commands_have_help_with_examples(run, cmd):
    r = run(cmd, "--help")
    assert r.exit_code == 0 and f"$ jotkit {cmd}" in r.stdout
