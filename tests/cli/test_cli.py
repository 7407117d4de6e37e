"""Tests of the jotkit CLI (token commands) through Click's runner and real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import jotkit
from jotkit.cli import build_app, main

NOW = 1795420800  # 2026-11-23T08:00:00Z
SECRET = "k7Hq2-xW9vLm4pR8tY1uZ3aB6cD0eF5gJ2hN"
ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["decode", "verify", "sign", "keygen", "jwks", "thumbprint", "audit", "debugger"]


@pytest.fixture(scope="module")
def app():
    return build_app()


@pytest.fixture(scope="module")
def es_key():
    return jotkit.Key.generate("ES256", kid="k1")


@pytest.fixture
def keyfiles(tmp_path, es_key):
    priv = tmp_path / "es.private.pem"
    pub = tmp_path / "es.public.pem"
    priv.write_bytes(es_key.to_pem(private=True))
    pub.write_bytes(es_key.public().to_pem())
    jwk = tmp_path / "es.public.jwk"
    jwk.write_text(json.dumps(es_key.public().to_jwk()))
    return {"priv": priv, "pub": pub, "jwk": jwk}


def _token(key, **kw):
    claims = {"sub": "alice", **kw.pop("claims", {})}
    kw.setdefault("expires_in", 840)
    return jotkit.encode(claims, key, now=kw.pop("now", NOW), **kw)


def _one_line_error(result):
    err = result.stderr.strip()
    assert "Traceback" not in result.output
    assert len(err.splitlines()) == 1, err
    return err


# ---- decode ----


def test_decode_human_marks_unverified_and_shows_times(run, es_key):
    tok = _token(es_key)
    r = run("decode", tok, "--now", NOW)
    assert r.exit_code == 0, r.output
    assert "UNVERIFIED" in r.stdout
    assert '"sub": "alice"' in r.stdout
    assert "2026-11-23T08:14:00Z" in r.stdout
    assert "expires in 14 min" in r.stdout
    assert "\x1b[" not in r.stdout  # no colours when not a terminal


def test_decode_expired_relative(run, es_key):
    tok = _token(es_key, now=NOW - 4 * 3600, expires_in=3600)
    r = run("decode", tok, "--now", NOW, "--json")
    data = json.loads(r.stdout)
    assert data["times"]["exp"]["relative"] == "expired 3 h ago"
    assert data["times"]["iat"]["relative"] == "issued 4 h ago"


def test_decode_json_for_scripts(run, es_key):
    tok = _token(es_key)
    r = run("decode", "--json", "--now", NOW, tok)
    data = json.loads(r.stdout)
    assert data["verified"] is False
    assert data["header"] == {"alg": "ES256", "typ": "JWT", "kid": "k1"}
    assert data["payload"]["sub"] == "alice"
    assert data["times"]["exp"] == {
        "epoch": NOW + 840,
        "iso": "2026-11-23T08:14:00Z",
        "relative": "expires in 14 min",
    }
    assert data["signature"] == tok.rsplit(".", 1)[1]


@pytest.mark.parametrize("arg", [None, "-"])
def test_decode_reads_stdin(run, es_key, arg):
    tok = _token(es_key)
    args = ["decode", "--json"] + ([arg] if arg else [])
    r = run(*args, input=f"  Bearer {tok}\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["payload"]["sub"] == "alice"


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..x"])
def test_decode_malformed_is_one_line_exit_1(run, bad):
    r = run("decode", bad)
    assert r.exit_code == 1
    assert _one_line_error(r).startswith("error: malformed:")


def test_decode_empty_stdin_is_usage_error(run):
    r = run("decode", input="")
    assert r.exit_code == 2
    assert "empty" in _one_line_error(r)


# ---- verify ----


def test_verify_valid_pem_and_jwk(run, es_key, keyfiles):
    tok = _token(es_key, issuer="https://auth.example", audience="api")
    for keyfile in (keyfiles["pub"], keyfiles["jwk"], keyfiles["priv"]):
        r = run(
            "verify",
            tok,
            "--key",
            keyfile,
            "--issuer",
            "https://auth.example",
            "--audience",
            "api",
            "--now",
            NOW + 10,
        )
        assert r.exit_code == 0, r.output
        assert "VALID" in r.stdout


def test_verify_json(run, es_key, keyfiles):
    tok = _token(es_key)
    r = run("verify", tok, "-k", keyfiles["pub"], "--json", "--now", NOW)
    data = json.loads(r.stdout)
    assert data["valid"] is True
    assert data["claims"]["sub"] == "alice"
    assert data["alg"] == "ES256"
    r = run("verify", tok, "-k", keyfiles["pub"], "--json", "--now", NOW + 10_000)
    assert r.exit_code == 1
    assert json.loads(r.stdout) == {
        "valid": False,
        "code": "expired",
        "message": json.loads(r.stdout)["message"],
    }


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--issuer", "https://other"], "missing_claim"),
        (["--audience", "api"], "missing_claim"),
        (["--typ", "at+jwt"], "invalid_typ"),
    ],
)
def test_verify_invalid_exit_1(run, es_key, keyfiles, extra, code):
    tok = _token(es_key)
    r = run("verify", tok, "--key", keyfiles["pub"], "--now", NOW, *extra)
    assert r.exit_code == 1, r.output
    err = _one_line_error(r)
    assert err.startswith(f"INVALID: {code}")


def test_verify_wrong_key_and_expired(run, es_key, tmp_path):
    tok = _token(es_key)
    other = tmp_path / "other.pem"
    other.write_bytes(jotkit.Key.generate("ES256").public().to_pem())
    r = run("verify", tok, "--key", other, "--now", NOW)
    assert r.exit_code == 1
    assert "bad_signature" in _one_line_error(r)
    hs = _token(jotkit.Key.from_secret(SECRET, "HS256"))
    r = run("verify", hs, "--key", other, "--now", NOW)
    assert r.exit_code == 1
    assert "alg_not_allowed" in _one_line_error(r)
    r = run("verify", tok, "--key", other, "--alg", "ES384")
    assert r.exit_code == 2  # the key does not fit the algorithm: a usage error


def test_verify_usage_errors_exit_2(run, es_key, keyfiles, tmp_path):
    tok = _token(es_key)
    r = run("verify", tok)
    assert r.exit_code == 2
    assert "exactly one key source" in _one_line_error(r)
    r = run("verify", tok, "--key", tmp_path / "missing.pem")
    assert r.exit_code == 2
    assert "cannot read" in _one_line_error(r)
    r = run("verify", tok, "--key", keyfiles["pub"], "--secret-env", "X")
    assert r.exit_code == 2
    r = run("verify", tok, "--secret-env", "JOTKIT_TEST_UNSET_VAR")
    assert r.exit_code == 2
    assert "not set" in _one_line_error(r)
    r = run("verify", tok, "--nonsense-option")
    assert r.exit_code == 2


def test_verify_secret_from_env_and_file(run, tmp_path):
    key = jotkit.Key.from_secret(SECRET, "HS256")
    tok = _token(key)
    r = run(
        "verify",
        tok,
        "--secret-env",
        "JOTKIT_TEST_SECRET",
        "--now",
        NOW,
        env={"JOTKIT_TEST_SECRET": SECRET},
    )
    assert r.exit_code == 0, r.output
    f = tmp_path / "secret.txt"
    f.write_text(SECRET + "\n")
    assert run("verify", tok, "--secret-file", f, "--now", NOW).exit_code == 0
    f.write_text(SECRET + "x")
    assert run("verify", tok, "--secret-file", f, "--now", NOW).exit_code == 1
    f.write_text("short")
    r = run("verify", tok, "--secret-file", f, "--now", NOW)
    assert r.exit_code == 2
    assert "weak_key" in _one_line_error(r)


def test_secret_is_never_a_command_line_value(run):
    r = run("verify", "a.b.c", "--secret", SECRET)
    assert r.exit_code == 2


class _JWKSHandler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_verify_with_jwks_url(run, es_key):
    rsa = jotkit.Key.generate("RS256", kid="r1")
    _JWKSHandler.body = json.dumps(
        jotkit.KeySet([es_key.public(), rsa.public()]).to_jwks()
    ).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JWKSHandler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        for key in (es_key, rsa):
            r = run("verify", _token(key), "--jwks-url", url, "--now", NOW)
            assert r.exit_code == 0, r.output
        other = jotkit.Key.generate("ES256", kid="nope")
        r = run("verify", _token(other), "--jwks-url", url, "--now", NOW)
        assert r.exit_code == 1
        assert "key_not_found" in _one_line_error(r)
        hs = _token(jotkit.Key.from_secret(SECRET, "HS256"))
        r = run("verify", hs, "--jwks-url", url, "--now", NOW)
        assert r.exit_code == 1
        assert "alg_not_allowed" in _one_line_error(r)
        # RSA keys published without "alg" are bound to the token's RSA alg
        ps = jotkit.Key.generate("PS256", kid="p1")
        jwk = ps.public().to_jwk()
        del jwk["alg"]
        _JWKSHandler.body = json.dumps({"keys": [jwk, es_key.public().to_jwk()]}).encode()
        assert run("verify", _token(ps), "--jwks-url", url, "--now", NOW).exit_code == 0
        assert run("verify", _token(es_key), "--jwks-url", url, "--now", NOW).exit_code == 0
    finally:
        server.shutdown()
        server.server_close()


# ---- sign ----


def test_sign_roundtrip_with_claims(run, es_key, keyfiles):
    r = run(
        "sign",
        "--key",
        keyfiles["priv"],
        "--claims",
        '{"sub": "bob", "n": 1}',
        "--claim",
        "admin=true",
        "--claim",
        "team=blue",
        "--expires-in",
        "15m",
        "--issuer",
        "https://auth.example",
        "--audience",
        "api",
        "--jti",
        "--now",
        NOW,
    )
    assert r.exit_code == 0, r.output
    tok = r.stdout.strip()
    vt = jotkit.decode_complete(
        tok,
        es_key.public(),
        algorithms=["ES256"],
        now=NOW,
        issuer="https://auth.example",
        audience="api",
    )
    c = vt.claims
    assert (c["sub"], c["n"], c["admin"], c["team"]) == ("bob", 1, True, "blue")
    assert c["exp"] - c["iat"] == 900
    assert "jti" in c
    # a PEM has no kid, so the token carries the key's RFC 7638 thumbprint
    assert vt.header["kid"] == es_key.thumbprint()


def test_sign_with_secret_and_claims_file(run, tmp_path):
    sf = tmp_path / "s"
    sf.write_text(SECRET * 2)
    cf = tmp_path / "claims.json"
    cf.write_text('{"sub": "carol"}')
    r = run(
        "sign",
        "--secret-file",
        sf,
        "--alg",
        "HS384",
        "--claims",
        f"@{cf}",
        "--expires-in",
        "none",
        "--kid",
        "hk",
    )
    assert r.exit_code == 0, r.output
    tok = r.stdout.strip()
    header, claims = jotkit.decode_unverified(tok)
    assert header["alg"] == "HS384"
    assert header["kid"] == "hk"
    assert claims == {"sub": "carol", "iat": claims["iat"]}
    key = jotkit.Key.from_secret(SECRET * 2, "HS384")
    assert jotkit.decode(tok, key, algorithms=["HS384"], require=())["sub"] == "carol"


def test_sign_errors(run, keyfiles):
    r = run("sign", "--claim", "sub=x")
    assert r.exit_code == 2
    r = run("sign", "--key", keyfiles["pub"], "--claim", "sub=x")
    assert r.exit_code == 2
    assert "private key" in _one_line_error(r)
    r = run("sign", "--key", keyfiles["priv"], "--claim", "novalue")
    assert r.exit_code == 2
    r = run("sign", "--key", keyfiles["priv"], "--claims", "[1]")
    assert r.exit_code == 2
    assert "JSON object" in _one_line_error(r)
    r = run("sign", "--key", keyfiles["priv"], "--expires-in", "soon")
    assert r.exit_code == 2


# ---- keygen, jwks, thumbprint ----


@pytest.mark.parametrize("alg", ["RS256", "PS512", "ES256", "ES384", "ES512", "EdDSA"])
def test_keygen_pem_files_sign_and_verify(run, tmp_path, alg):
    prefix = tmp_path / "k"
    r = run("keygen", alg, "--out", prefix)
    assert r.exit_code == 0, r.output
    priv = Path(f"{prefix}.private.pem")
    pub = Path(f"{prefix}.public.pem")
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    args = ["--alg", alg] if alg.startswith(("RS", "PS")) else []
    r = run("sign", "--key", priv, "--claim", "sub=x", "--now", NOW, *args)
    assert r.exit_code == 0, r.output
    tok = r.stdout.strip()
    r = run("verify", tok, "--key", pub, "--now", NOW, *args)
    assert r.exit_code == 0, r.output
    # the default kid is the thumbprint
    assert (
        jotkit.decode_unverified(tok)[0]["kid"]
        == jotkit.Key.from_pem(pub.read_bytes(), alg).thumbprint()
    )
    # refuses to overwrite
    assert run("keygen", alg, "--out", prefix).exit_code == 2


def test_keygen_jwk_stdout(run, tmp_path):
    r = run("keygen", "ES384", "--format", "jwk", "--kid", "mine")
    doc = json.loads(r.stdout)
    priv = jotkit.Key.from_jwk(doc["private"])
    assert priv.is_private
    assert priv.kid == "mine"
    assert doc["public"]["kid"] == "mine"
    assert "d" not in doc["public"]
    # the keygen document itself is a usable key file
    kf = tmp_path / "generated.json"
    kf.write_text(json.dumps(doc))
    r = run("sign", "--key", kf, "--claim", "sub=kg", "--now", NOW)
    assert r.exit_code == 0, r.output
    pub = tmp_path / "pub.jwk"
    pub.write_text(json.dumps(doc["public"]))
    assert run("verify", r.stdout.strip(), "--key", pub, "--now", NOW).exit_code == 0
    r = run("keygen", "HS512", "--format", "jwk")
    doc = json.loads(r.stdout)
    k = jotkit.Key.from_jwk(doc["private"])
    assert k.alg == "HS512"
    assert k.kid == k.thumbprint()
    assert "public" not in doc
    r = run("keygen", "HS256")
    assert r.exit_code == 2
    r = run("keygen", "XX999")
    assert r.exit_code == 2
    r = run("keygen", "RS256", "--size", "1024")
    assert r.exit_code == 2
    assert "2048" in _one_line_error(r)


def test_jwks_and_thumbprint(run, tmp_path, es_key, keyfiles):
    rsa = jotkit.Key.generate("RS256")
    rf = tmp_path / "rsa.pem"
    rf.write_bytes(rsa.to_pem(private=True))
    r = run("jwks", keyfiles["priv"], rf, "--alg", "RS256")
    assert r.exit_code == 2  # one --alg cannot fit an EC and an RSA key
    jwkf = tmp_path / "rsa.jwk"
    jwkf.write_text(json.dumps(rsa.public().to_jwk()))
    r = run("jwks", keyfiles["priv"], jwkf)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    ks = jotkit.KeySet.from_jwks(doc)
    assert len(ks) == 2
    assert all("d" not in k for k in doc["keys"])
    assert {k["kid"] for k in doc["keys"]} == {es_key.thumbprint(), rsa.thumbprint()}
    set_file = tmp_path / "jwks.json"
    set_file.write_text(r.stdout)
    tok = _token(rsa.with_kid(rsa.thumbprint()))
    assert run("verify", tok, "--key", set_file, "--now", NOW).exit_code == 0

    r = run("thumbprint", keyfiles["pub"])
    assert r.stdout.strip() == es_key.thumbprint()
    r = run("thumbprint", rf, "--uri")
    assert r.stdout.strip() == rsa.thumbprint_uri()


# ---- audit ----


def test_audit_exit_codes_and_json(run, es_key):
    good = _token(es_key)
    r = run("audit", good, "--now", NOW)
    assert r.exit_code == 0, r.output
    assert "No findings" in r.stdout
    risky = jotkit.encode({"sub": "a", "password": "x"}, es_key, expires_in="2h", now=NOW)
    r = run("audit", risky, "--now", NOW)
    assert r.exit_code == 1
    assert "sensitive_password" in r.stdout
    assert "why:" in r.stdout
    r = run("audit", risky, "--now", NOW, "--json", "--fail-on", "critical")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert [f["code"] for f in data["findings"]] == ["sensitive_password", "lifetime_too_long"]
    assert data["failed"] is False
    r = run("audit", good, "--now", NOW, "--alg", "RS256", "--fail-on", "high")
    assert r.exit_code == 1
    assert "alg_unexpected" in r.stdout
    r = run("audit", good, "--fail-on", "sometimes")
    assert r.exit_code == 2


def test_audit_with_key_and_secret(run, es_key, keyfiles, tmp_path):
    tok = _token(es_key)
    assert run("audit", tok, "--key", keyfiles["pub"], "--now", NOW).exit_code == 0
    other = tmp_path / "o.pem"
    other.write_bytes(jotkit.Key.generate("ES256").public().to_pem())
    r = run("audit", tok, "--key", other, "--now", NOW, "--json")
    assert r.exit_code == 1
    assert [f["code"] for f in json.loads(r.stdout)["findings"]] == ["signature_invalid"]
    weak = tmp_path / "weak"
    weak.write_text("secret")
    r = run("audit", "not.a.token", "--secret-file", weak, "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["findings"][0]["code"] == "malformed"


# ---- help ----


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_has_an_example(run, cmd):
    r = run(cmd, "--help")
    assert r.exit_code == 0
    assert "Examples" in r.stdout
    assert f"$ jotkit {cmd}" in r.stdout


def test_top_level_help_lists_commands(run):
    r = run("--help")
    for cmd in COMMANDS:
        assert cmd in r.stdout


def test_main_turns_unexpected_errors_into_one_line(monkeypatch, capsys):
    import jotkit.cli.commands as commands

    def boom(*a, **k):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(commands, "read_token", boom)
    with pytest.raises(SystemExit) as exc:
        main(["decode", "x.y.z"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == "error: kaboom second line\n"


# ---- real processes ----


def _jotkit_bin() -> str:
    exe = Path(sys.executable).with_name("jotkit")
    if not exe.exists():
        pytest.skip("the jotkit console script is not installed: pip install -e .")
    return str(exe)


def test_console_script_roundtrip(tmp_path):
    exe = _jotkit_bin()
    env = {**os.environ, "NO_COLOR": "1"}
    prefix = tmp_path / "k"
    subprocess.run(
        [exe, "keygen", "ES256", "--out", str(prefix)], check=True, env=env, capture_output=True
    )
    tok = subprocess.run(
        [exe, "sign", "--key", f"{prefix}.private.pem", "--claim", "sub=proc"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    p = subprocess.run(
        [exe, "verify", "--key", f"{prefix}.public.pem"],
        input=tok,
        env=env,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "\x1b[" not in p.stdout
    p = subprocess.run(
        [exe, "decode", "--json"], input=tok, env=env, capture_output=True, text=True
    )
    assert json.loads(p.stdout)["payload"]["sub"] == "proc"


def test_console_script_errors_have_no_traceback():
    exe = _jotkit_bin()
    p = subprocess.run([exe, "decode", "garbage"], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1
    assert "Traceback" not in p.stderr
    p = subprocess.run(
        [exe, "verify", "a.b.c", "--key", "/nonexistent/key.pem"], capture_output=True, text=True
    )
    assert p.returncode in (1, 2)
    assert "Traceback" not in p.stderr
    p = subprocess.run([exe, "decode"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr


def test_colours_only_on_a_terminal(tmp_path):
    """On a pseudo-terminal Rich colours the output; NO_COLOR turns that off."""
    import pty
    import select

    exe = _jotkit_bin()
    key = jotkit.Key.generate("ES256")
    tok = _token(key)

    def run_on_pty(extra_env):
        master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        env.update({"TERM": "xterm-256color", "COLUMNS": "120", **extra_env})
        proc = subprocess.Popen([exe, "decode", tok], stdout=slave, stderr=slave, env=env)
        os.close(slave)
        chunks = []
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO when the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=30)
        os.close(master)
        return b"".join(chunks).decode("utf-8", "replace")

    coloured = run_on_pty({})
    assert "UNVERIFIED" in coloured
    assert "\x1b[" in coloured
    plain = run_on_pty({"NO_COLOR": "1"})
    assert "UNVERIFIED" in plain
    assert "\x1b[3" not in plain  # no colour codes (bold/underline may remain)


def test_debugger_command_serves_the_page():
    """`jotkit debugger --port N` serves the page on 127.0.0.1 until stopped."""
    import socket
    import time

    import httpx

    exe = _jotkit_bin()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "debugger", "--port", str(port)], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("jotkit debugger did not start")
                time.sleep(0.1)
        assert r.status_code == 200
        assert "jotkit token debugger" in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_huge_integer_numericdate_is_reported_cleanly_by_decode_verify_audit(
    run, es_key, keyfiles, claim
):
    """A validly signed token with a 320-digit exp/nbf/iat: no traceback, no OverflowError."""
    tok = jotkit.encode({"sub": "alice", "exp": NOW + 600, claim: 10**320}, es_key, now=NOW)
    r = run("decode", tok, "--now", NOW, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["payload"][claim] == 10**320
    assert claim not in data["times"]
    r = run("decode", tok, "--now", NOW)
    assert r.exit_code == 0, r.output
    r = run("verify", tok, "--key", keyfiles["pub"], "--now", NOW)
    assert r.exit_code == 1, r.output
    assert _one_line_error(r).startswith("INVALID: invalid_claim")
    r = run("audit", tok, "--now", NOW, "--json")
    assert r.exit_code in (0, 1), r.output
    assert f"{claim} is a non-finite number" in r.stdout
