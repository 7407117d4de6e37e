"""Password rules (issue 9.9; NIST SP 800-63B §5.1.1.2, OWASP ASVS 2.1, OWASP Password
Storage Cheat Sheet): length limits shared by ``users add`` and login, common passwords,
NFKC normalisation, the argon2id cost floor, and hashes made before normalisation."""

from __future__ import annotations

import unicodedata

import pytest
from argon2 import PasswordHasher, Type
from argon2.low_level import hash_secret
from hypothesis import given, settings
from hypothesis import strategies as st

from jotkit.server import FrozenClock, Settings
from jotkit.server.passwords import (
    ARGON2_FLOOR,
    MAX_PASSWORD_LENGTH,
    PasswordPolicy,
    WeakPassword,
    _verify_one_thread,
)
from jotkit.server.settings import SettingsError

from .harness import START, Server, login, make_settings

NFC = unicodedata.normalize("NFC", "Crème brûlée façade à Noël")
NFD = unicodedata.normalize("NFD", NFC)


def test_users_add_and_login_agree_on_the_longest_password(cli, tmp_path):
    """``users add`` used to store a 1 MiB password that login then refused (max 1024)."""
    longest = "x7Q!" * (MAX_PASSWORD_LENGTH // 4)
    assert len(longest) == MAX_PASSWORD_LENGTH
    r = cli("users", "add", "long@example.com", input=longest + "\n")
    assert r.exit_code == 0, r.output
    for too_long in (longest + "y", "z" * (1 << 20)):
        r = cli("users", "add", "longer@example.com", input=too_long + "\n")
        assert r.exit_code == 2
        assert f"at most {MAX_PASSWORD_LENGTH} characters" in r.output
    srv = Server(make_settings(tmp_path / "data"), FrozenClock(START)).start()
    try:
        with srv.client() as c:
            assert login(c, "long@example.com", longest)["access_token"]
            r = c.post("/auth/login", json={"email": "long@example.com", "password": longest + "y"})
            assert r.status_code == 422
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Sh0rt!x", "at least 8 characters"),
        ("abcdefe\u0301", "at least 8 characters"),  # 8 code points typed, 7 characters in NFKC
        ("password", "common"),
        ("Password123!", "common"),
        ("QWERTYUIOP", "common"),
        ("letmein2024", "common"),
        ("changeme123", "common"),
        ("zed@example.com", "email"),
    ],
)
def test_users_add_refuses_short_common_and_guessable_passwords(cli, password, why):
    r = cli("users", "add", "zed@example.com", input=password + "\n")
    assert r.exit_code == 2, r.output
    assert why in r.output
    assert "zed@example.com" not in cli("users", "list").output


def test_users_add_accepts_a_decent_password(cli):
    r = cli("users", "add", "zed@example.com", input="tulip-orbit-93\n")
    assert r.exit_code == 0, r.output


def test_password_typed_in_nfd_logs_in(make_server):
    """NFKC before hashing and before verifying: the same password typed decomposed (NFD, as
    some keyboards and platforms send it) is the same password."""
    assert NFD != NFC and len(NFD) > len(NFC)
    srv = make_server()
    srv.add_user("nfd@example.com", NFC)
    srv.add_user("nfc@example.com", NFD)
    with srv.client() as c:
        assert login(c, "nfd@example.com", NFD)["access_token"]
        assert login(c, "nfc@example.com", NFC)["access_token"]


def test_hash_from_before_normalisation_still_verifies_and_is_upgraded(make_server):
    """A hash of the raw NFD text (as stored before NFKC was applied) keeps working, and the
    first login rehashes it into the normalised form."""
    srv = make_server()
    user = srv.add_user("old@example.com", "placeholder-password")
    legacy = PasswordHasher(
        time_cost=1, memory_cost=1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
    ).hash(NFD)
    srv.run(srv.service.store.users.set_password_hash(user.id, legacy))
    with srv.client() as c:
        assert login(c, "old@example.com", NFD)["access_token"]
        upgraded = srv.run(srv.service.store.users.get(user.id)).password_hash
        assert upgraded != legacy
        assert login(c, "old@example.com", NFC)["access_token"]  # now NFKC-hashed
        r = c.post("/auth/login", json={"email": "old@example.com", "password": NFC + "x"})
        assert r.status_code == 401


def test_new_password_rules_do_not_apply_to_login(make_server):
    """An account created before the rules (short password) can still log in."""
    srv = make_server()
    user = srv.add_user("legacy@example.com", "placeholder-password")
    srv.run(
        srv.service.store.users.set_password_hash(user.id, srv.service.passwords.hash("abc"))
    )
    with srv.client() as c:
        assert login(c, "legacy@example.com", "abc")["access_token"]


@pytest.mark.parametrize(
    ("time_cost", "memory_cost"),
    [(1, 1024), (1, 19456), (2, 19455), (3, 12287), (4, 9215), (9, 7167), (3, 8192)],
)
def test_argon2_costs_below_the_owasp_floor_are_refused(time_cost, memory_cost):
    with pytest.raises(SettingsError, match="JOTKIT_ARGON2"):
        Settings(argon2_time_cost=time_cost, argon2_memory_cost=memory_cost, argon2_parallelism=1)
    env = {"JOTKIT_ARGON2_TIME_COST": str(time_cost), "JOTKIT_ARGON2_MEMORY_COST": str(memory_cost)}
    with pytest.raises(SettingsError):
        Settings.from_env(env)
    with pytest.raises(ValueError, match="floor"):
        PasswordPolicy(time_cost, memory_cost, 1)


def test_argon2_floor_accepts_the_owasp_configurations_and_the_defaults():
    for time_cost, memory_cost in ARGON2_FLOOR.items():
        Settings(argon2_time_cost=time_cost, argon2_memory_cost=memory_cost, argon2_parallelism=1)
    defaults = Settings()
    assert ARGON2_FLOOR[min(defaults.argon2_time_cost, 5)] <= defaults.argon2_memory_cost
    # Going below the floor takes an explicit, test-only switch.
    cheap = Settings.from_env(
        {
            "JOTKIT_ARGON2_TIME_COST": "1",
            "JOTKIT_ARGON2_MEMORY_COST": "1024",
            "JOTKIT_ARGON2_INSECURE_TEST_COSTS": "1",
        }
    )
    assert cheap.argon2_memory_cost == 1024
    assert PasswordPolicy(1, 1024, 1, insecure_test_costs=True).hash("tulip-orbit-93")


def test_weak_password_is_a_value_error_with_the_rule():
    with pytest.raises(WeakPassword, match="at least 8"):
        PasswordPolicy.check_new("short")
    assert PasswordPolicy.check_new("ﬁne-tulip-93") == "fine-tulip-93"  # NFKC: the ﬁ ligature


# --- argon2id lanes on one thread (issue 10 §2): the same hashes, a core instead of p cores ---

_CHEAP = {"time_cost": 1, "memory_cost": 256, "hash_len": 32, "salt_len": 16, "type": Type.ID}


@pytest.mark.parametrize("parallelism", [1, 3, 4])
def test_argon2id_on_one_thread_agrees_with_argon2_cffi_both_ways(parallelism):
    """RFC 9106 §3.2: the lane count is a parameter, the thread count is not, so a hash made
    with every lane on one thread verifies with argon2-cffi (p threads) and back."""
    ours = PasswordPolicy(1, 256, parallelism, insecure_test_costs=True)
    theirs = PasswordHasher(parallelism=parallelism, **_CHEAP)
    made = ours.hash(NFC)
    assert made.startswith(f"$argon2id$v=19$m=256,t=1,p={parallelism}$")
    assert theirs.verify(made, NFC)
    assert ours.verify(theirs.hash(NFC), NFC) == (True, False)
    assert ours.verify(theirs.hash(NFC), NFC + "x") == (False, False)
    assert ours.verify(made, "not the password") == (False, False)


@settings(max_examples=25, deadline=None)
@given(password=st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_argon2id_on_one_thread_matches_argon2_cffi_on_any_password(password):
    theirs = PasswordHasher(parallelism=2, **_CHEAP)
    ours = PasswordPolicy(1, 256, 2, insecure_test_costs=True)
    normalized = unicodedata.normalize("NFKC", password)
    assert theirs.verify(ours.hash(password), normalized)
    assert ours.verify(theirs.hash(normalized), password)[0]


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "$argon2id$v=19$m=256,t=1,p=2$AAAA$BBBB",  # salt and hash too short
        "$argon2id$v=19$m=9999999999,t=1,p=2$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43,  # > 2^32 KiB
        "$argon2id$v=19$m=8,t=1,p=4$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43,  # m < 8 p
        "$argon2id$v=19$m=0256,t=1,p=2$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43,  # not canonical
        "$argon2id$v=19$m=256,t=1,p=2$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43 + "\x00",
        "$argon2id$v=19$m=256,t=1,p=2$c2FsdHNhbHRzYWx0c2FsdA$" + "é" * 43,
    ],
)
def test_malformed_stored_hash_is_a_failed_login_not_a_crash(stored):
    assert PasswordPolicy(1, 256, 2, insecure_test_costs=True).verify(stored, "pw") == (
        False,
        False,
    )


@pytest.mark.parametrize("kind", [Type.ID, Type.I, Type.D])
@pytest.mark.parametrize("version", [0x13, 0x10])
def test_every_argon2_type_and_version_verifies_on_one_thread_and_is_upgraded(kind, version):
    """argon2i, argon2d and v1.0 hashes (RFC 9106 §3.1; imported ones) take the same one-thread
    path as the dummy of unknown users, so their cost does not tell which accounts exist; a
    match that is not the current argon2id v1.3 cost asks for a rehash."""
    ours = PasswordPolicy(1, 256, 2, insecure_test_costs=True)
    stored = hash_secret(b"tulip-orbit-93", b"saltsaltsaltsalt", 1, 256, 2, 32, kind, version)
    text = stored.decode()
    assert _verify_one_thread(text, "tulip-orbit-93") is True
    assert _verify_one_thread(text, "tulip-orbit-94") is False
    current = kind is Type.ID and version == 0x13
    assert ours.verify(text, "tulip-orbit-93") == (True, not current)
    assert ours.verify(text, "tulip-orbit-94") == (False, False)


def test_noncanonical_base64_in_a_stored_hash_is_refused_as_argon2_cffi_refuses_it():
    """A last base64 character with stray low bits decodes to the same bytes in Python but is
    not the reference encoding: the hash has one spelling, as libargon2 requires."""
    ours = PasswordPolicy(1, 256, 2, insecure_test_costs=True)
    good = ours.hash("tulip-orbit-93")
    head, salt, digest = good.rsplit("$", 2)
    assert salt[-1] in "AQgw" and digest[-1] in "AEIMQUYcgkosw048"  # 16 and 32 bytes: spare bits
    for stored in (f"{head}${salt[:-1]}{chr(ord(salt[-1]) + 1)}${digest}",
                   f"{head}${salt}${digest[:-1]}{chr(ord(digest[-1]) + 1)}"):
        assert _verify_one_thread(stored, "tulip-orbit-93") is None
        assert ours.verify(stored, "tulip-orbit-93") == (False, False)


def test_nul_truncated_stored_hash_is_a_failed_login_not_a_crash():
    """libargon2 reads the stored hash as a C string, so ``valid\\0junk`` would verify and then
    fail to parse for the rehash check (an exception, so a 500); it is a failed login."""
    ours = PasswordPolicy(1, 256, 2, insecure_test_costs=True)
    stored = ours.hash("tulip-orbit-93") + "\x00$junk"
    assert ours.verify(stored, "tulip-orbit-93") == (False, False)


def test_lone_surrogate_password_is_a_failed_login_not_a_crash():
    with pytest.raises(WeakPassword, match="valid Unicode"):
        PasswordPolicy.check_new("tulip-orbit-\udc80")  # undecodable argv byte
    ours = PasswordPolicy(1, 256, 2, insecure_test_costs=True)
    assert ours.verify(ours.hash("tulip-orbit-93"), "tulip-\ud800") == (False, False)
    assert ours.verify(None, "\udfff") == (False, False)
