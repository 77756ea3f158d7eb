"""Coach and admin accounts (contract section 5.2): adding them, one-time links to set a
password, signing in and its throttling, signing out everywhere, API tokens, disabling,
the audit log, and no password, token or link ever stored in the clear."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, column, inspect, select, table
from sqlalchemy.sql.expression import ColumnClause

from service import cli
from service.actions import coaches as accounts
from service.actions.errors import Conflict, Invalid, NotFound
from service.storage.db import transaction
from tests.support.engine import Folders, Harness

PASSWORD = "correct horse battery"
ADDRESS = "203.0.113.7"


def columns(conn: Connection, name: str) -> list[ColumnClause[Any]]:
    return [column(c["name"]) for c in inspect(conn).get_columns(name)]


def _secret(link: str) -> str:
    return link.rsplit("/", 1)[1]


def _account(harness: Harness, email: str = "ana@example.org", role: str = "coach") -> str:
    made = accounts.add(harness.runtime, accounts.operator(), email=email, name="Ana", role=role)
    accounts.set_password(harness.runtime, _secret(made.link), PASSWORD, ADDRESS)
    return made.coach.id


def test_an_account_is_added_with_a_one_time_link_to_set_its_password(harness: Harness) -> None:
    rt = harness.runtime
    made = accounts.add(rt, accounts.operator(), email=" Ana@Example.org ", name="Ana Coach")
    assert (made.coach.email, made.coach.role, made.coach.password_hash) == (
        "ana@example.org",
        "coach",
        None,
    )
    assert made.link.startswith("https://tend.test/dashboard/set-password/")
    with pytest.raises(Conflict, match="exists already"):
        accounts.add(rt, accounts.operator(), email="ana@example.org", name="Again")
    with pytest.raises(Invalid, match="role must be"):
        accounts.add(rt, accounts.operator(), email="b@example.org", name="B", role="owner")
    with pytest.raises(NotFound):  # a coach cannot add accounts
        accounts.add(rt, accounts.Actor("c_x", "Cee", "coach"), email="c@example.org", name="C")

    secret = _secret(made.link)
    assert accounts.link_account(rt, secret) == made.coach
    with pytest.raises(Invalid, match="10 to 256 characters"):
        accounts.set_password(rt, secret, "short", ADDRESS)
    assert accounts.link_account(rt, secret) is not None  # a refusal spends nothing
    accounts.set_password(rt, secret, PASSWORD, ADDRESS)
    with pytest.raises(Invalid, match="used or has expired"):
        accounts.set_password(rt, secret, PASSWORD + "!", ADDRESS)
    assert accounts.sign_in(rt, "ANA@example.org", PASSWORD, ADDRESS).id == made.coach.id


def test_a_link_expires_and_a_new_one_replaces_the_old(harness: Harness) -> None:
    rt = harness.runtime
    made = accounts.add(rt, accounts.operator(), email="ana@example.org", name="Ana")
    harness.clock.advance(accounts.LINK_LIFETIME + timedelta(seconds=1))
    with pytest.raises(Invalid, match="used or has expired"):
        accounts.set_password(rt, _secret(made.link), PASSWORD, ADDRESS)
    first = accounts.new_link(rt, accounts.operator(), "ana@example.org")
    second = accounts.new_link(rt, accounts.operator(), "ana@example.org")
    assert accounts.link_account(rt, _secret(first)) is None  # replaced
    accounts.set_password(rt, _secret(second), PASSWORD, ADDRESS)


def test_sign_in_refuses_alike_and_throttles_per_account_and_per_address(
    harness: Harness,
) -> None:
    rt = harness.runtime
    _account(harness)
    messages = set()
    for email, password in [
        ("ana@example.org", "wrong password!"),
        ("nobody@example.org", PASSWORD),
        ("", ""),
    ]:
        with pytest.raises(accounts.SignInRefused) as refused:
            accounts.sign_in(rt, email, password, ADDRESS)
        messages.add(refused.value.message)
    assert len(messages) == 1  # nothing tells which accounts exist

    # Per account: the fifth failure in a quarter of an hour locks it, from anywhere.
    for i in range(accounts.MAX_ACCOUNT_FAILURES - 1):
        with pytest.raises(accounts.SignInRefused):
            accounts.sign_in(rt, "ana@example.org", f"guess number {i}", f"198.51.100.{i}")
    with pytest.raises(accounts.SignInRefused, match="too many attempts"):
        accounts.sign_in(rt, "ana@example.org", PASSWORD, "192.0.2.1")  # even the right one
    harness.clock.advance(accounts.THROTTLE_WINDOW + timedelta(seconds=1))
    assert accounts.sign_in(rt, "ana@example.org", PASSWORD, "192.0.2.1").email == "ana@example.org"

    # Per address: twenty failures from one address, whatever the accounts.
    for i in range(accounts.MAX_ADDRESS_FAILURES):
        with pytest.raises(accounts.SignInRefused):
            accounts.sign_in(rt, f"guess{i}@example.org", "whatever it is", "192.0.2.99")
    with pytest.raises(accounts.SignInRefused, match="too many attempts"):
        accounts.sign_in(rt, "ana@example.org", PASSWORD, "192.0.2.99")
    assert accounts.sign_in(rt, "ana@example.org", PASSWORD, "192.0.2.100").email


def test_signing_out_and_disabling_end_sessions_and_tokens(harness: Harness) -> None:
    rt = harness.runtime
    coach_id = _account(harness)
    coach = accounts.sign_in(rt, "ana@example.org", PASSWORD, ADDRESS)
    assert accounts.session_account(rt, coach_id, coach.session_version) is not None
    accounts.sign_out_everywhere(rt, coach_id, ADDRESS)
    assert accounts.session_account(rt, coach_id, coach.session_version) is None
    again = accounts.sign_in(rt, "ana@example.org", PASSWORD, ADDRESS)
    made = accounts.create_token(rt, accounts.operator(), "ana@example.org", "laptop")
    assert accounts.token_account(rt, made.secret) == again
    accounts.disable(rt, accounts.operator(), "ana@example.org")
    assert accounts.session_account(rt, coach_id, again.session_version) is None
    assert accounts.token_account(rt, made.secret) is None
    with pytest.raises(accounts.SignInRefused):
        accounts.sign_in(rt, "ana@example.org", PASSWORD, ADDRESS)


def test_tokens_are_created_listed_and_revoked(harness: Harness) -> None:
    rt = harness.runtime
    _account(harness)
    other = _account(harness, "bo@example.org")
    made = accounts.create_token(rt, accounts.operator(), "ana@example.org", "laptop")
    assert made.secret.startswith("tend_")
    assert accounts.token_account(rt, made.secret) is not None
    for wrong in ("", made.secret[:-1], made.secret + "x", "tend_" + "A" * 43, made.secret[5:]):
        assert accounts.token_account(rt, wrong) is None
    (listed,) = accounts.tokens(rt, accounts.operator(), "ana@example.org")
    assert (listed.id, listed.label, listed.revoked_at) == (made.token.id, "laptop", None)
    assert listed.last_used_at == harness.clock.now()
    # A coach manages their own tokens only; another's are as if they did not exist.
    bo = accounts.Actor(other, "Bo", "coach")
    with pytest.raises(NotFound):
        accounts.tokens(rt, bo, "ana@example.org")
    with pytest.raises(NotFound):
        accounts.revoke_token(rt, bo, "ana@example.org", made.token.id)
    accounts.revoke_token(rt, accounts.operator(), "ana@example.org", made.token.id)
    assert accounts.token_account(rt, made.secret) is None
    with pytest.raises(NotFound, match="no live token"):
        accounts.revoke_token(rt, accounts.operator(), "ana@example.org", made.token.id)


def test_every_account_action_and_sign_in_is_on_the_audit_log(harness: Harness) -> None:
    rt = harness.runtime
    coach_id = _account(harness)
    accounts.sign_in(rt, "ana@example.org", PASSWORD, ADDRESS)
    with pytest.raises(accounts.SignInRefused):
        accounts.sign_in(rt, "ana@example.org", "not the password", ADDRESS)
    accounts.create_token(rt, accounts.operator(), "ana@example.org", "laptop")
    accounts.disable(rt, accounts.operator(), "ana@example.org")
    found = [(e.actor, e.action, e.address) for e in reversed(accounts.audit(rt))]
    assert found == [
        ("operator", "account.add", None),
        (coach_id, "account.set_password", ADDRESS),
        (coach_id, "sign_in", ADDRESS),
        (coach_id, "sign_in.refused", ADDRESS),
        ("operator", "token.create", None),
        ("operator", "account.disable", None),
    ]
    mine = accounts.audit(rt, coach_email="ana@example.org")
    assert {e.actor for e in mine} == {coach_id}
    later = accounts.audit(rt, since=harness.clock.now() + timedelta(seconds=1))
    assert later == []


def test_no_password_token_or_link_is_stored_or_logged_in_the_clear(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = harness.runtime
    made = accounts.add(rt, accounts.operator(), email="ana@example.org", name="Ana")
    link_secret = _secret(made.link)
    accounts.set_password(rt, link_secret, PASSWORD, ADDRESS)
    accounts.sign_in(rt, "ana@example.org", PASSWORD, ADDRESS)
    with pytest.raises(accounts.SignInRefused):
        accounts.sign_in(rt, "ana@example.org", PASSWORD + " typo", ADDRESS)
    token = accounts.create_token(rt, accounts.operator(), "ana@example.org", "laptop").secret
    accounts.token_account(rt, token)
    secrets = [PASSWORD, PASSWORD + " typo", link_secret, token, token[5:]]
    stored: list[str] = []
    with transaction(rt.engine) as conn:
        for name in inspect(conn).get_table_names():
            rows = conn.execute(select(table(name, *columns(conn, name))))
            stored += [str(value) for row in rows for value in row]
    assert any(PASSWORD not in v and v.startswith("$argon2id$") for v in stored)
    dump = "\n".join(stored)
    for secret in secrets:
        assert secret not in dump
    output = capsys.readouterr()
    for secret in secrets:
        assert secret not in output.out + output.err


def test_the_coaches_commands(harness: Harness, folders: Folders) -> None:
    env = {
        "TEND_DATABASE_URL": harness.runtime.settings.database_url,
        "TEND_SCHEDULES_DIR": str(folders.schedules),
        "TEND_TEMPLATES_DIR": str(folders.templates),
        "TEND_PUBLIC_URL": "https://tend.test",
    }

    def tend(*args: str) -> Any:
        return CliRunner().invoke(cli.main, list(args), env=env)

    added = tend("coaches", "add", "--email", "ana@example.org", "--name", "Ana", "--role", "admin")
    assert added.exit_code == 0, added.output
    lines = added.stdout.splitlines()
    assert lines[-1].startswith("c_")
    assert "https://tend.test/dashboard/set-password/" in lines[1]
    token = tend("coaches", "token", "ana@example.org", "--name", "ci")
    assert token.stdout.splitlines()[-1].startswith("tend_")
    assert accounts.token_account(harness.runtime, token.stdout.splitlines()[-1]) is not None
    listed = tend("coaches", "list")
    assert "ana@example.org  Ana   admin  invited" in listed.stdout
    assert tend("coaches", "disable", "ana@example.org").exit_code == 0
    assert "disabled" in tend("coaches", "list").stdout
    unknown = tend("coaches", "disable", "nobody@example.org")
    assert (unknown.exit_code, unknown.output.strip()) == (
        2,
        "tend: no account with the email nobody@example.org",
    )
    audit = tend("audit", "--coach", "ana@example.org")
    assert audit.exit_code == 0
    log = tend("audit")
    assert [line.split()[4] for line in log.stdout.splitlines()[1:]] == [
        "account.disable",
        "token.create",
        "account.add",
    ]
