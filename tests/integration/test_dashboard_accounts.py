"""The dashboard with coach and admin accounts (contract section 5.2): signing in by
email and password, throttling, logging out for good, disabled accounts, the one-time
set-password page, the admin pages (accounts, audit log), and a coach's session scoped
to their own participants everywhere.

The cohort is tests/support/dashboard_seed.py's (see tests/integration/test_dashboard.py
for its fixtures, reused here): coach Cora owns Rae and Sam, coach Ben owns Jo and Dee,
and Ana is nobody's yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from service.actions import coaches as accounts
from service.storage import audit as audit_rows
from service.storage.db import reading, transaction
from service.storage.tables import participants
from service.web.session import SESSION_COOKIE, new_session
from tests.integration.test_dashboard import (  # noqa: F401 (fixtures)
    BASE,
    TOKEN,
    App,
    Source,
    _app,
    db,
    source,
)

PASSWORD = "correct horse battery"
OTHER_SITE = {"Origin": "https://evil.example"}


@dataclass
class People:
    app: App
    cora: str  # coach ids
    ben: str
    boss: str  # an admin

    def sign_in(self, email: str, password: str = PASSWORD, **extra: str) -> None:
        answer = self.app.client.post(
            "/dashboard/login",
            data={"email": email, "password": password, **extra},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text

    def audit(self, what: str) -> list[audit_rows.AuditEntry]:
        with reading(self.app.runtime.engine) as conn:
            return audit_rows.entries(conn, action=what)


def _secret(link: str) -> str:
    return link.rsplit("/", 1)[1]


def _account(app: App, email: str, name: str, role: str = "coach") -> str:
    made = accounts.add(app.runtime, accounts.operator(), email=email, name=name, role=role)
    accounts.set_password(app.runtime, _secret(made.link), PASSWORD, "198.51.100.1")
    return made.coach.id


@pytest.fixture
def people(db: str, source: Source) -> Iterator[People]:  # noqa: F811 (the fixtures)
    app = _app(db, source)
    try:
        cora = _account(app, "cora@example.org", "Cora Coach")
        ben = _account(app, "ben@example.org", "Ben Coach")
        boss = _account(app, "boss@example.org", "Bo Admin", "admin")
        ids = app.cohort.ids
        with transaction(app.runtime.engine) as conn:
            for key, owner in (("rae", cora), ("sam", cora), ("jo", ben), ("dee", ben)):
                conn.execute(
                    update(participants).where(participants.c.id == ids[key]).values(coach_id=owner)
                )
        yield People(app, cora, ben, boss)
    finally:
        app.runtime.close()


def _csrf(app: App, path: str = "/dashboard") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', app.client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


# --- signing in and out --------------------------------------------------------------


def test_an_account_signs_in_by_email_and_password(people: People) -> None:
    app = people.app
    page = app.client.get("/dashboard/login").text
    assert 'name="email"' in page
    assert 'name="password"' in page
    assert "Admin token" in page  # the operator's way in is still there
    answer = app.client.post(
        "/dashboard/login",
        data={"email": " Cora@Example.org ", "password": PASSWORD, "next": "/dashboard/plans"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/plans"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert PASSWORD.split()[0] not in cookie
    overview = app.client.get("/dashboard")
    assert overview.status_code == 200
    assert "Signed in as <strong>Cora Coach</strong>" in overview.text
    assert "My participants" in overview.text
    assert "/dashboard/accounts" not in overview.text  # no admin pages for a coach
    (entry,) = people.audit("sign_in")
    assert (entry.actor, entry.address) == (people.cora, "203.0.113.7")


def test_a_wrong_password_is_refused_with_the_one_message(people: People) -> None:
    app = people.app
    for email, password in (
        ("cora@example.org", PASSWORD + "!"),
        ("nobody@example.org", PASSWORD),
        ("cora@example.org", ""),
    ):
        answer = app.client.post(
            "/dashboard/login",
            data={"email": email, "password": password},
            follow_redirects=False,
        )
        assert answer.status_code == 401
        assert "do not match an account that may sign in" in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
        assert f'value="{email}"' in answer.text  # the email stays in the form
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 303
    assert len(people.audit("sign_in.refused")) == 3


def test_sign_in_is_throttled(people: People) -> None:
    app = people.app
    for _ in range(accounts.MAX_ACCOUNT_FAILURES):
        answer = app.client.post(
            "/dashboard/login",
            data={"email": "cora@example.org", "password": "wrong password"},
        )
        assert answer.status_code == 401
    # Now even the right password is refused, with a message that says to wait.
    answer = app.client.post(
        "/dashboard/login",
        data={"email": "cora@example.org", "password": PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 429
    assert "Too many attempts to sign in" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    app.clock.advance(accounts.THROTTLE_WINDOW)
    people.sign_in("cora@example.org")


def test_logging_out_ends_the_session_even_for_a_kept_cookie(people: People) -> None:
    app = people.app
    people.sign_in("cora@example.org")
    kept = app.client.cookies[SESSION_COOKIE]
    answer = app.client.post("/dashboard/logout", data={"csrf": _csrf(app)}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/login"
    assert SESSION_COOKIE not in app.client.cookies
    # The old cookie, replayed, is refused: the account's session version moved on.
    app.client.cookies.set(SESSION_COOKIE, kept, domain="tend.test", path="/dashboard")
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 303
    assert people.audit("sign_out")[0].actor == people.cora


def test_a_disabled_accounts_session_is_refused(people: People) -> None:
    app = people.app
    people.sign_in("ben@example.org")
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 200
    accounts.disable(app.runtime, accounts.operator(), "ben@example.org")
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 303
    answer = app.client.post(
        "/dashboard/login",
        data={"email": "ben@example.org", "password": PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 401


def test_a_forged_account_session_is_refused(people: People) -> None:
    app = people.app
    people.sign_in("cora@example.org")
    good = app.client.cookies[SESSION_COOKIE]
    payload, _, mac = good.rpartition(".")
    stamp, sid, _, version = payload.split(".")
    for forged in (
        f"{stamp}.{sid}.{people.boss}.{version}.{mac}",  # another account, same signature
        f"{int(stamp) + 86400}.{sid}.{people.cora}.{version}.{mac}",
        f"{stamp}.{sid}.{people.cora}.{int(version) + 1}.{mac}",
    ):
        app.client.cookies.set(SESSION_COOKIE, forged, domain="tend.test", path="/dashboard")
        assert app.client.get("/dashboard", follow_redirects=False).status_code == 303


def test_the_operator_still_signs_in_with_the_token_and_it_is_on_record(people: People) -> None:
    app = people.app
    answer = app.client.post("/dashboard/login", data={"token": "wrong"})
    assert answer.status_code == 401
    assert "not the admin token" in answer.text
    app.login()
    page = app.client.get("/dashboard").text
    assert "Signed in as <strong>operator</strong>" in page
    assert "/dashboard/accounts" in page
    assert people.audit("sign_in")[0].actor == "operator"
    assert people.audit("sign_in.refused")[0].detail == "admin token"


def test_the_operator_logging_out_ends_their_session_even_for_a_kept_cookie(
    people: People,
) -> None:
    app = people.app
    app.login()
    kept = app.client.cookies[SESSION_COOKIE]
    answer = app.client.post("/dashboard/logout", data={"csrf": _csrf(app)}, follow_redirects=False)
    assert answer.headers["location"] == "/dashboard/login"
    app.client.cookies.set(SESSION_COOKIE, kept, domain="tend.test", path="/dashboard")
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 303
    assert [e.actor for e in people.audit("sign_out")] == ["operator"]
    app.login()  # signing in again works, with a new session
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 200


def test_the_operator_sign_in_is_throttled_per_address(people: People) -> None:
    app = people.app
    for _ in range(accounts.MAX_ADDRESS_FAILURES):
        assert app.client.post("/dashboard/login", data={"token": "guess"}).status_code == 401
    answer = app.client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert answer.status_code == 429
    assert "Too many attempts to sign in" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    # The same address is throttled for accounts too; after the window, both work again.
    answer = app.client.post(
        "/dashboard/login", data={"email": "cora@example.org", "password": PASSWORD}
    )
    assert answer.status_code == 429
    app.clock.advance(accounts.THROTTLE_WINDOW)
    app.login()
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 200


# --- the set-password page ---------------------------------------------------------------


def test_a_one_time_link_sets_the_password(people: People) -> None:
    app = people.app
    made = accounts.add(app.runtime, accounts.operator(), email="dan@example.org", name="Dan")
    path = made.link.removeprefix(BASE)
    page = app.client.get(path)
    assert page.status_code == 200
    assert "Dan" in page.text
    assert "dan@example.org" in page.text
    assert f"At least {accounts.MIN_PASSWORD} characters" in page.text
    assert page.headers["cache-control"] == "no-store"
    # From another site: refused, nothing spent.
    refused = app.client.post(
        path, data={"password": PASSWORD, "again": PASSWORD}, headers=OTHER_SITE
    )
    assert refused.status_code == 403
    mismatch = app.client.post(path, data={"password": PASSWORD, "again": PASSWORD + "x"})
    assert mismatch.status_code == 400
    assert "not the same" in mismatch.text
    short = app.client.post(path, data={"password": "short", "again": "short"})
    assert short.status_code == 400
    assert "10 to 256 characters" in short.text
    done = app.client.post(
        path, data={"password": PASSWORD, "again": PASSWORD}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/dashboard/login?email=dan%40example.org"
    login = app.client.get(done.headers["location"]).text
    assert "Your password is set" in login
    assert 'value="dan@example.org"' in login
    people.sign_in("dan@example.org")
    # The link is spent: a clear page, 410.
    again = app.client.get(path)
    assert again.status_code == 410
    assert "has been used or has expired" in again.text
    assert app.client.post(path, data={"password": PASSWORD, "again": PASSWORD}).status_code == 410
    assert app.client.get("/dashboard/set-password/not-a-link").status_code == 410
    assert people.audit("account.set_password")[0].address == "203.0.113.7"


def test_an_expired_link_says_so(people: People) -> None:
    app = people.app
    made = accounts.add(app.runtime, accounts.operator(), email="eve@example.org", name="Eve")
    app.clock.advance(accounts.LINK_LIFETIME)
    answer = app.client.get(made.link.removeprefix(BASE))
    assert answer.status_code == 410
    assert "Ask an admin for a new one" in answer.text


# --- the admin pages -------------------------------------------------------------------


def test_admin_pages_need_a_session_and_are_not_found_for_a_coach(people: People) -> None:
    app = people.app
    for path in ("/dashboard/accounts", "/dashboard/audit"):
        answer = app.client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/dashboard/login?next=")
    people.sign_in("cora@example.org")
    missing = app.client.get("/dashboard/no-such-page")
    for path in ("/dashboard/accounts", "/dashboard/audit?account=ben%40example.org"):
        answer = app.client.get(path)
        assert answer.status_code == 404, path
        assert "ben@example.org" not in answer.text
    assert missing.status_code == 404
    csrf = _csrf(app)
    before = len(accounts.accounts(app.runtime))
    for path, form in (
        ("/dashboard/accounts", {"email": "x@example.org", "name": "X"}),
        ("/dashboard/accounts/disable", {"account": people.ben}),
        ("/dashboard/accounts/link", {"account": people.ben}),
        ("/dashboard/accounts/token", {"account": people.cora, "label": "mine"}),
    ):
        answer = app.client.post(path, data={"csrf": csrf, **form})
        assert answer.status_code == 404, path
    assert len(accounts.accounts(app.runtime)) == before
    assert not any(a.disabled for a in accounts.accounts(app.runtime))


def test_an_admin_manages_accounts_and_tokens(people: People) -> None:
    app = people.app
    people.sign_in("boss@example.org")
    page = app.client.get("/dashboard/accounts")
    assert page.status_code == 200
    for email in ("cora@example.org", "ben@example.org", "boss@example.org"):
        assert email in page.text
    csrf = _csrf(app, "/dashboard/accounts")
    # A new account: its link is shown once, on the page that made it.
    added = app.client.post(
        "/dashboard/accounts",
        data={"csrf": csrf, "email": "fay@example.org", "name": "Fay", "role": "coach"},
    )
    assert added.status_code == 200
    link = re.search(r'value="(https://tend\.test/dashboard/set-password/[^"]+)"', added.text)
    assert link, added.text
    assert accounts.link_account(app.runtime, _secret(link.group(1))) is not None
    assert link.group(1) not in app.client.get("/dashboard/accounts").text
    # The same email again: said, nothing added.
    again = app.client.post(
        "/dashboard/accounts", data={"csrf": csrf, "email": "fay@example.org", "name": "F"}
    )
    assert again.status_code == 400
    assert "exists already" in again.text
    fay = next(a for a in accounts.accounts(app.runtime) if a.email == "fay@example.org")
    # A new link replaces the old one.
    fresh = app.client.post("/dashboard/accounts/link", data={"csrf": csrf, "account": fay.id})
    newer = re.search(r'value="(https://tend\.test/dashboard/set-password/[^"]+)"', fresh.text)
    assert newer
    assert newer.group(1) != link.group(1)
    assert accounts.link_account(app.runtime, _secret(link.group(1))) is None
    # A token for Cora: shown once, then listed by its label, then revoked.
    made = app.client.post(
        "/dashboard/accounts/token",
        data={"csrf": csrf, "account": people.cora, "label": "sheets"},
    )
    secret = re.search(r'value="(tend_[^"]+)"', made.text)
    assert secret
    assert accounts.token_account(app.runtime, secret.group(1)) is not None
    listed = app.client.get("/dashboard/accounts").text
    assert "sheets" in listed
    assert secret.group(1) not in listed
    (token,) = accounts.tokens(app.runtime, accounts.operator(), "cora@example.org")
    revoked = app.client.post(
        "/dashboard/accounts/revoke",
        data={"csrf": csrf, "account": people.cora, "token_id": token.id},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert accounts.token_account(app.runtime, secret.group(1)) is None
    # Disabling Ben ends his sessions.
    disabled = app.client.post(
        "/dashboard/accounts/disable",
        data={"csrf": csrf, "account": people.ben},
        follow_redirects=False,
    )
    assert disabled.status_code == 303
    assert next(a for a in accounts.accounts(app.runtime) if a.id == people.ben).disabled
    # An unknown account is not found.
    assert (
        app.client.post(
            "/dashboard/accounts/link", data={"csrf": csrf, "account": "c_nobody"}
        ).status_code
        == 404
    )
    # Each action is on the audit log once, by whom and from where, and so is each page
    # the admin read.
    with reading(app.runtime.engine) as conn:
        log = audit_rows.entries(conn, actor=people.boss)
    done = [e.action for e in log]
    for action in ("account.add", "account.link", "token.create", "token.revoke",
                   "account.disable"):  # fmt: skip
        assert done.count(action) == 1, action
    assert not [a for a in done if a.startswith("POST ")]  # not twice over
    assert "GET /dashboard/accounts" in done
    assert all(e.address == "203.0.113.7" for e in log if e.action != "account.set_password")


def test_the_audit_log_page_filters(people: People) -> None:
    app = people.app
    people.sign_in("cora@example.org")
    app.client.post("/dashboard/logout", data={"csrf": _csrf(app)})
    people.sign_in("boss@example.org")
    page = app.client.get("/dashboard/audit")
    assert page.status_code == 200
    assert "Cora Coach" in page.text
    assert "sign_out" in page.text
    only_cora = app.client.get("/dashboard/audit", params={"account": "cora@example.org"}).text
    assert "Cora Coach" in only_cora
    assert "Bo Admin" not in only_cora.split("<tbody>")[1]
    sign_outs = app.client.get("/dashboard/audit", params={"action": "sign_out"}).text
    assert "<code>sign_in</code>" not in sign_outs
    assert "<code>sign_out</code>" in sign_outs
    later = app.client.get("/dashboard/audit", params={"since": "2030-01-01"}).text
    assert "Nothing on the log matches these filters" in later
    bad = app.client.get("/dashboard/audit", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert "is not a date" in bad.text


def test_admin_forms_need_their_csrf_token_and_this_site(people: People) -> None:
    app = people.app
    people.sign_in("boss@example.org")
    csrf = _csrf(app, "/dashboard/accounts")
    path = "/dashboard/accounts/disable"
    for form, headers in (
        ({"account": people.ben}, {}),
        ({"account": people.ben, "csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}, {}),
        ({"account": people.ben, "csrf": csrf}, OTHER_SITE),
        ({"account": people.ben, "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        answer = app.client.post(path, data=form, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, (form, headers)
    assert not next(a for a in accounts.accounts(app.runtime) if a.id == people.ben).disabled
    answer = app.client.post(
        "/dashboard/login",
        data={"email": "boss@example.org", "password": PASSWORD},
        headers=OTHER_SITE,
        follow_redirects=False,
    )
    assert answer.status_code == 403


# --- a coach sees only their own people ---------------------------------------------------


def test_a_coach_sees_only_their_own_participants(people: People) -> None:
    app = people.app
    ids, enrollments = app.cohort.ids, app.cohort.enrollments
    people.sign_in("cora@example.org")
    overview = app.client.get("/dashboard").text
    assert "Rae Example" in overview
    assert "Sam Rivera" in overview
    for other in ("Jo Park", "Dee Okafor", "Ana Sato"):
        assert other not in overview
    plan = app.client.get("/dashboard/plans/walks-and-moods").text
    assert "Rae Example" in plan
    assert "Jo Park" not in plan
    assert app.client.get(f"/dashboard/participants/{ids['sam']}").status_code == 200
    # Another coach's participant is exactly a missing one.
    missing = app.client.get("/dashboard/participants/p_doesnotexist")
    for key in ("jo", "dee", "ana"):
        answer = app.client.get(f"/dashboard/participants/{ids[key]}")
        assert answer.status_code == 404
        assert answer.text == missing.text
    csrf = _csrf(app)
    for path, form in (
        (f"/dashboard/enrollments/{enrollments['jo']}/pause", {}),
        (f"/dashboard/enrollments/{enrollments['dee']}/resume", {}),
        (f"/dashboard/participants/{ids['jo']}/rotate-feed", {}),
        (f"/dashboard/participants/{ids['jo']}/test-message", {"channel": "sms"}),
    ):
        answer = app.client.post(path, data={"csrf": csrf, **form})
        assert answer.status_code == 404, path
        assert "Jo Park" not in answer.text
        assert "Dee Okafor" not in answer.text
    assert app.enrollment_status(enrollments["jo"]) == "active"
    assert app.enrollment_status(enrollments["dee"]) == "paused"
    assert not app.sms.sent
    # Their own: done.
    mine = app.client.post(
        f"/dashboard/enrollments/{enrollments['rae']}/pause",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    assert mine.status_code == 303
    assert app.enrollment_status(enrollments["rae"]) == "paused"


def test_an_admin_account_sees_everyone(people: People) -> None:
    app = people.app
    people.sign_in("boss@example.org")
    overview = app.client.get("/dashboard").text
    for name in ("Rae Example", "Sam Rivera", "Jo Park", "Dee Okafor", "Ana Sato"):
        assert name in overview
    assert app.client.get(f"/dashboard/participants/{app.cohort.ids['jo']}").status_code == 200


def test_a_coach_session_made_by_hand_still_only_sees_theirs(people: People) -> None:
    """The cookie's account decides, read from the database each time."""
    app = people.app
    ben = next(a for a in accounts.accounts(app.runtime) if a.id == people.ben)
    cookie = new_session(app.runtime, app.clock.now(), (ben.id, ben.session_version))
    app.client.cookies.set(SESSION_COOKIE, cookie, domain="tend.test", path="/dashboard")
    page = app.client.get("/dashboard").text
    assert "Jo Park" in page
    assert "Rae Example" not in page
    assert app.client.get("/dashboard/accounts").status_code == 404


def test_a_coach_sees_only_messages_to_their_own_people_in_the_outbox(
    db: str,  # noqa: F811 (the fixture)
    source: Source,  # noqa: F811 (the fixture)
) -> None:
    app = _app(db, source, outbox=True)
    try:
        cora = _account(app, "cora@example.org", "Cora Coach")
        ids = app.cohort.ids
        with transaction(app.runtime.engine) as conn:
            conn.execute(
                update(participants).where(participants.c.id == ids["rae"]).values(coach_id=cora)
            )
        app.login()  # the operator sends a test message to Rae and one to Dee
        for key in ("rae", "dee"):
            here = f"/dashboard/participants/{ids[key]}"
            app.client.post(
                f"{here}/test-message", data={"csrf": _csrf(app, here), "channel": "sms"}
            )
        everyone = app.client.get("/dashboard/outbox").text
        assert "+14155550101" in everyone
        assert "+14155550104" in everyone
        app.client.cookies.clear()
        answer = app.client.post(
            "/dashboard/login",
            data={"email": "cora@example.org", "password": PASSWORD},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        hers = app.client.get("/dashboard/outbox").text
        assert "+14155550101" in hers
        assert "+14155550104" not in hers  # Dee is not hers
    finally:
        app.runtime.close()
