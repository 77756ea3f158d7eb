"""`GET/POST /check-in/{token}`: the one-click check-in page of email and calendar links.

GET only shows; POST records while the window is open, replaces an earlier answer and
is logged as a reply of channel "link"; forged, foreign or unknown tokens get 404,
expired ones 410. Every test runs on SQLite and on PostgreSQL (`db_url`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import report
from service.actions.links import CHECK_IN_LINK_DAYS
from service.core.tokens import check_in_token, read_check_in
from service.storage import enrollments as enrollment_rows
from service.storage import replies as reply_log
from service.storage.db import transaction
from service.storage.tables import occurrences, replies
from service.web.app import create_app
from tests.support.engine import Folders, Harness, publish

PLAN = """
    plan: habits
    title: Habits
    weeks: 1
    practices:
      - id: walk
        category: movement
        title: Evening walk
        at: "09:00"
        channels: [email]
      - id: mood
        category: mindfulness
        title: Mood check
        at: "09:00"
        channels: [email]
        check_in: {kind: rating, scale: [1, 5], question: "How calm do you feel?"}
      - id: minutes
        category: mindfulness
        title: Meditation
        at: "09:00"
        channels: [email]
        check_in: {kind: number, unit: minutes}
      - id: journal
        category: sleep
        title: Journal
        at: "09:00"
        channels: [email]
        check_in: text
"""

# 09:00 EST on Monday 2026-03-02 is 14:00 UTC; the default 12h window closes at 02:00 UTC.
INSTANT = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW_END = INSTANT + timedelta(hours=12)
DURING = INSTANT + timedelta(hours=1)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def h(harness: Harness, folders: Folders) -> Harness:
    folders.write_plan("habits", PLAN)
    publish(harness.runtime)
    person = harness.participant()
    harness.enroll(person, "habits", date(2026, 3, 2))
    return harness


@pytest.fixture
def client(h: Harness) -> Iterator[TestClient]:
    with TestClient(create_app(h.runtime)) as c:
        yield c


def occurrence(h: Harness, key: str) -> dict[str, Any]:
    with transaction(h.runtime.engine) as conn:
        row = conn.execute(select(occurrences).where(occurrences.c.key == key)).mappings().one()
        return dict(row)


def token_for(h: Harness, key: str, *, secret: bytes | None = None) -> str:
    """A token as `engine.delivery.check_in_url` makes it: valid until a week after
    the window closes."""
    row = occurrence(h, key)
    expires = row["window_end"] + timedelta(days=CHECK_IN_LINK_DAYS)
    return check_in_token(secret or h.runtime.secret, row["id"], expires)


def reply_rows(h: Harness) -> list[dict[str, Any]]:
    with transaction(h.runtime.engine) as conn:
        return [dict(r) for r in conn.execute(select(replies).order_by(replies.c.id)).mappings()]


def snapshot(h: Harness) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with transaction(h.runtime.engine) as conn:
        occ = [
            dict(r) for r in conn.execute(select(occurrences).order_by(occurrences.c.id)).mappings()
        ]
    return occ, reply_rows(h)


def post(client: TestClient, token: str, body: str) -> Any:
    return client.post(f"/check-in/{token}", content=body, headers=FORM)


def buttons(html: str) -> list[tuple[str, str]]:
    """(name, value) of every submit button on the page."""
    return re.findall(r'<button[^>]*name="(\w+)" value="([^"]+)"', html)


# --- GET -------------------------------------------------------------------------------


def test_get_shows_the_practice_and_its_buttons_and_records_nothing(
    h: Harness, client: TestClient
) -> None:
    h.clock.set(DURING)
    token = token_for(h, "walk:2026-03-02")
    before = snapshot(h)
    page = client.get(f"/check-in/{token}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Evening walk</h1>" in page.text
    assert "Monday 2 March, 09:00" in page.text  # in the participant's zone
    assert buttons(page.text) == [("outcome", "done"), ("outcome", "skipped")]
    assert '<form method="post">' in page.text
    # A second look (a mail scanner, a preview) changes nothing either.
    assert client.get(f"/check-in/{token}").status_code == 200
    assert snapshot(h) == before
    assert occurrence(h, "walk:2026-03-02")["check_in"] is None


def test_get_of_a_rating_practice_shows_its_scale_and_question(
    h: Harness, client: TestClient
) -> None:
    h.clock.set(DURING)
    page = client.get(f"/check-in/{token_for(h, 'mood:2026-03-02')}")
    assert page.status_code == 200
    assert "How calm do you feel?" in page.text
    assert buttons(page.text) == [
        *(("rating", str(n)) for n in range(1, 6)),
        ("outcome", "skipped"),
    ]


def test_get_before_the_instant_says_when_it_opens_and_offers_no_form(
    h: Harness, client: TestClient
) -> None:
    h.clock.set(INSTANT - timedelta(minutes=1))
    page = client.get(f"/check-in/{token_for(h, 'walk:2026-03-02')}")
    assert page.status_code == 200
    assert "This check-in opens at Monday 2 March, 09:00." in page.text
    assert "<form" not in page.text
    # And a POST that early records nothing.
    assert post(client, token_for(h, "walk:2026-03-02"), "outcome=done").status_code == 409
    assert occurrence(h, "walk:2026-03-02")["check_in"] is None
    assert reply_rows(h) == []


def test_private_headers_on_every_check_in_page(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    good = token_for(h, "walk:2026-03-02")
    responses = [
        client.get(f"/check-in/{good}"),
        post(client, good, "outcome=done"),
        client.get(f"/check-in/{good}x"),  # 404
    ]
    h.clock.set(WINDOW_END + timedelta(days=CHECK_IN_LINK_DAYS))
    responses.append(client.get(f"/check-in/{good}"))  # 410
    assert [r.status_code for r in responses] == [200, 200, 404, 410]
    for r in responses:
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-robots-tag"] == "noindex"


# --- POST ------------------------------------------------------------------------------


def test_post_done_records_it_from_the_link_and_confirms(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    response = post(client, token_for(h, "walk:2026-03-02"), "outcome=done")
    assert response.status_code == 200
    # The shipped "logged" answer: first done of the practice.
    assert "Logged: Evening walk. Nice start." in response.text
    assert "<form" not in response.text  # the confirmation replaces the buttons
    row = occurrence(h, "walk:2026-03-02")
    assert (row["check_in"], row["check_in_source"], row["check_in_at"]) == (
        "done",
        "link",
        DURING,
    )
    assert (row["check_in_value"], row["check_in_unit"], row["check_in_text"]) == (None, None, None)


def test_a_link_check_in_is_logged_as_a_reply_of_channel_link(
    h: Harness, client: TestClient
) -> None:
    h.clock.set(DURING)
    assert post(client, token_for(h, "walk:2026-03-02"), "outcome=done").status_code == 200
    row = occurrence(h, "walk:2026-03-02")
    (reply,) = reply_rows(h)
    assert reply["channel"] == "link"
    assert reply["body"] == "done"
    assert reply["understood"] == "done"
    assert reply["occurrence_id"] == row["id"]
    assert reply["handled_at"] == DURING
    assert reply["detail"] == "checked in by link: done for Evening walk"
    assert reply["provider_id"] is None
    with transaction(h.runtime.engine) as conn:
        (listed,) = reply_log.list_replies(conn, participant_id=reply["participant_id"])
    assert (listed["channel"], listed["occurrence_key"]) == ("link", "walk:2026-03-02")


def test_a_rating_is_recorded_within_its_scale(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    token = token_for(h, "mood:2026-03-02")
    response = post(client, token, "rating=4")
    assert response.status_code == 200
    row = occurrence(h, "mood:2026-03-02")
    assert (row["check_in"], row["check_in_value"], row["check_in_source"]) == ("done", 4.0, "link")
    (reply,) = reply_rows(h)
    assert (reply["body"], reply["understood"]) == ("rating 4", "rating")


def test_a_rating_confirmation_quotes_the_rating_like_an_sms_does(
    h: Harness, client: TestClient
) -> None:
    h.clock.set(DURING)
    response = post(client, token_for(h, "mood:2026-03-02"), "rating=4")
    assert "Logged: Mood check, 4 of 5. Nice start." in response.text


def test_a_rating_off_the_scale_is_refused_and_nothing_is_recorded(
    h: Harness, client: TestClient
) -> None:
    h.clock.set(DURING)
    token = token_for(h, "mood:2026-03-02")
    for body in ("rating=9", "rating=0", "outcome=rating&rating=", "rating=lots"):
        response = post(client, token, body)
        assert response.status_code == 400, body
        assert 'role="alert"' in response.text
        assert "<form" in response.text  # the buttons are offered again
    assert "That did not fit" in post(client, token, "rating=9").text
    row = occurrence(h, "mood:2026-03-02")
    assert (row["check_in"], row["check_in_value"]) == (None, None)
    assert reply_rows(h) == []


def test_a_number_is_recorded_with_its_unit(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    response = post(client, token_for(h, "minutes:2026-03-02"), "outcome=number&number=25")
    assert response.status_code == 200
    row = occurrence(h, "minutes:2026-03-02")
    assert (row["check_in"], row["check_in_value"], row["check_in_unit"]) == (
        "done",
        25.0,
        "minutes",
    )
    (reply,) = reply_rows(h)
    assert reply["body"] == "25 minutes"
    # A comma decimal is read as a point.
    assert post(client, token_for(h, "minutes:2026-03-02"), "outcome=number&number=7,5").is_success
    assert occurrence(h, "minutes:2026-03-02")["check_in_value"] == 7.5


def test_a_number_confirmation_writes_the_number_as_a_person_does(
    h: Harness, client: TestClient
) -> None:
    h.clock.set(DURING)
    response = post(client, token_for(h, "minutes:2026-03-02"), "outcome=number&number=25")
    assert "Logged: Meditation, 25 minutes. Nice start." in response.text


def test_a_number_practice_refuses_text_for_a_number(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    response = post(client, token_for(h, "minutes:2026-03-02"), "outcome=number&number=abc")
    assert response.status_code == 400
    assert "&#39;abc&#39; is not a number." in response.text
    assert occurrence(h, "minutes:2026-03-02")["check_in"] is None


def test_a_text_check_in_is_stored(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    token = token_for(h, "journal:2026-03-02")
    note = "Slept well & felt <calm>"
    response = post(client, token, urlencode({"outcome": "text", "text": f"  {note} "}))
    assert response.status_code == 200
    assert "Logged: Journal, thanks for writing. Nice start." in response.text
    row = occurrence(h, "journal:2026-03-02")
    assert (row["check_in"], row["check_in_text"], row["check_in_value"]) == ("done", note, None)
    (reply,) = reply_rows(h)
    assert (reply["body"], reply["understood"]) == (note, "text")
    # The page shows the note escaped, never as markup.
    page = client.get(f"/check-in/{token}")
    assert "&lt;calm&gt;" in page.text
    assert "<calm>" not in page.text
    # An empty note is refused and leaves the first one standing.
    assert post(client, token, "outcome=text&text=+").status_code == 400
    assert occurrence(h, "journal:2026-03-02")["check_in_text"] == note


def test_a_second_post_replaces_the_first_and_counts_once(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    token = token_for(h, "walk:2026-03-02")
    assert post(client, token, "outcome=done").status_code == 200
    h.clock.set(DURING + timedelta(minutes=2))
    second = post(client, token, "outcome=skipped")
    assert second.status_code == 200
    assert "Updated: Evening walk skipped." in second.text
    row = occurrence(h, "walk:2026-03-02")
    assert (row["check_in"], row["check_in_at"]) == ("skipped", DURING + timedelta(minutes=2))
    assert [r["body"] for r in reply_rows(h)] == ["done", "skipped"]
    # A GET now shows what stands, and that it can still be changed.
    page = client.get(f"/check-in/{token}")
    assert "You checked in already: skipped." in page.text
    # Adherence counts the occurrence once, as skipped.
    h.clock.set(WINDOW_END + timedelta(hours=1))
    (entry,) = report.build(h.runtime).entries
    walk = next(line for line in entry.practices if line.practice == "walk")
    a = walk.adherence
    assert (a.scheduled, a.done, a.skipped, a.missed, a.pending) == (1, 0, 1, 0, 0)


def test_post_after_the_window_closed_is_refused_and_nothing_recorded(
    h: Harness, client: TestClient
) -> None:
    token = token_for(h, "walk:2026-03-02")
    h.clock.set(WINDOW_END)  # the window is [instant, window_end)
    response = post(client, token, "outcome=done")
    assert response.status_code == 409
    assert "This check-in closed at Monday 2 March, 21:00; nothing was recorded." in response.text
    assert occurrence(h, "walk:2026-03-02")["check_in"] is None
    assert reply_rows(h) == []
    # Still refused once the scheduler has marked it; it stays as the window left it.
    h.scheduler.maintain(force=True)
    assert post(client, token, "outcome=done").status_code == 409
    assert occurrence(h, "walk:2026-03-02")["check_in"] == "excused"  # no email was sent
    assert reply_rows(h) == []


def test_a_paused_enrollment_takes_no_link_check_in_as_no_text_reply_would(
    h: Harness, client: TestClient
) -> None:
    from service.storage import enrollments as enrollment_rows
    from service.storage.db import transaction

    token = token_for(h, "walk:2026-03-02")
    h.clock.set(DURING)  # the window is open: only the pause stands in the way
    with transaction(h.runtime.engine) as conn:
        (enrollment,) = enrollment_rows.list_enrollments(conn)
        enrollment_rows.set_enrollment_status(conn, enrollment.id, "paused", now=h.clock.now())
    response = post(client, token, "outcome=done")
    assert response.status_code == 409
    assert occurrence(h, "walk:2026-03-02")["check_in"] is None
    assert reply_rows(h) == []


def test_post_one_second_before_the_window_closes_counts(h: Harness, client: TestClient) -> None:
    h.clock.set(WINDOW_END - timedelta(seconds=1))
    assert post(client, token_for(h, "walk:2026-03-02"), "outcome=done").status_code == 200
    assert occurrence(h, "walk:2026-03-02")["check_in"] == "done"


def test_an_expired_token_gets_410_for_get_and_post(h: Harness, client: TestClient) -> None:
    token = token_for(h, "walk:2026-03-02")
    expires = WINDOW_END + timedelta(days=CHECK_IN_LINK_DAYS)
    h.clock.set(expires - timedelta(seconds=1))
    assert client.get(f"/check-in/{token}").status_code == 200  # closed, but still shown
    h.clock.set(expires)
    got = client.get(f"/check-in/{token}")
    assert got.status_code == 410
    assert "This link has expired" in got.text
    posted = post(client, token, "outcome=done")
    assert posted.status_code == 410
    assert occurrence(h, "walk:2026-03-02")["check_in"] is None
    assert reply_rows(h) == []


def test_a_token_whose_own_expiry_passed_is_410_even_with_the_window_open(
    h: Harness, client: TestClient
) -> None:
    row = occurrence(h, "walk:2026-03-02")
    token = check_in_token(h.runtime.secret, row["id"], DURING)
    h.clock.set(DURING)
    assert client.get(f"/check-in/{token}").status_code == 410
    assert post(client, token, "outcome=done").status_code == 410
    assert occurrence(h, "walk:2026-03-02")["check_in"] is None


def test_forged_foreign_and_unknown_tokens_get_404(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    good = token_for(h, "walk:2026-03-02")
    payload, _, mac = good.rpartition(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    row = occurrence(h, "walk:2026-03-02")
    expires = WINDOW_END + timedelta(days=CHECK_IN_LINK_DAYS)
    # The payload names the next occurrence, the mac is the genuine one's.
    other_id = occurrence(h, "walk:2026-03-03")["id"]
    swapped = f"{other_id}.{payload.partition('.')[2]}.{mac}"
    tokens = {
        "tampered mac": f"{payload}.{flipped}",
        "payload moved to another occurrence": swapped,
        "another secret": token_for(h, "walk:2026-03-02", secret=b"not-the-secret"),
        "no mac": payload,
        "garbage": "nothing-here",
        "unknown occurrence": check_in_token(h.runtime.secret, row["id"] + 100_000, expires),
    }
    for what, token in tokens.items():
        assert client.get(f"/check-in/{token}").status_code == 404, what
        response = post(client, token, "outcome=done")
        assert response.status_code == 404, what
        assert "This link does not work." in response.text
    assert occurrence(h, "walk:2026-03-02")["check_in"] is None
    assert occurrence(h, "walk:2026-03-03")["check_in"] is None
    assert reply_rows(h) == []
    # The genuine token works.
    assert post(client, good, "outcome=done").status_code == 200


def test_a_cancelled_occurrence_is_not_found(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    token = token_for(h, "walk:2026-03-03")
    enrollment = occurrence(h, "walk:2026-03-03")["enrollment_id"]
    with transaction(h.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment, "cancelled", now=DURING)
    assert client.get(f"/check-in/{token}").status_code == 404


def test_a_form_without_a_choice_or_not_utf8_is_refused_with_400(
    h: Harness, client: TestClient
) -> None:
    h.clock.set(DURING)
    token = token_for(h, "walk:2026-03-02")
    for body, says in (
        ("", "Please choose one of the buttons."),
        ("outcome=maybe", "Please choose one of the buttons."),
        ("outcome=number&number=3", "That did not fit"),  # a number for a done practice
    ):
        response = post(client, token, body)
        assert response.status_code == 400, body
        assert says in response.text, body
    unreadable = client.post(f"/check-in/{token}", content=b"outcome=\xff\xfe", headers=FORM)
    assert unreadable.status_code == 400
    assert "The form could not be read." in unreadable.text
    assert occurrence(h, "walk:2026-03-02")["check_in"] is None
    assert reply_rows(h) == []


def test_a_body_over_8_kb_is_refused_with_413(h: Harness, client: TestClient) -> None:
    h.clock.set(DURING)
    token = token_for(h, "journal:2026-03-02")
    big = "outcome=text&text=" + "x" * (8 * 1024)
    response = post(client, token, big)
    assert response.status_code == 413
    assert response.headers["cache-control"] == "no-store"
    assert occurrence(h, "journal:2026-03-02")["check_in"] is None
    assert reply_rows(h) == []
    # Exactly 8 KB is read (and its 8 KB note is too long for a check-in: 400, not 413).
    exact = "outcome=text&text=" + "x" * (8 * 1024 - len("outcome=text&text="))
    assert len(exact) == 8 * 1024
    assert post(client, token, exact).status_code == 400


def test_a_practice_without_a_check_in_refuses_a_post(harness: Harness, folders: Folders) -> None:
    folders.write_plan(
        "quiet",
        """
        plan: quiet
        title: Quiet
        weeks: 1
        practices:
          - id: breathe
            category: mindfulness
            title: Breathe
            at: "09:00"
            channels: [email]
            check_in: none
        """,
    )
    publish(harness.runtime)
    harness.enroll(harness.participant(), "quiet", date(2026, 3, 2))
    harness.clock.set(DURING)
    token = token_for(harness, "breathe:2026-03-02")
    with TestClient(create_app(harness.runtime)) as client:
        page = client.get(f"/check-in/{token}")
        assert "<form" not in page.text
        assert post(client, token, "outcome=done").status_code == 409
    assert occurrence(harness, "breathe:2026-03-02")["check_in"] is None


# --- the link in the email the engine sends --------------------------------------------


def test_the_emailed_link_opens_the_page_and_records_a_check_in(
    h: Harness, client: TestClient
) -> None:
    h.at(INSTANT)
    assert len(h.email.sent) == 4  # one email per practice, all at 09:00
    walk = next(m for m in h.email.sent if m.subject == "Evening walk")
    urls = re.findall(r"https://tend\.test/check-in/\S+", walk.body)
    assert len(urls) == 1
    path = urls[0].removeprefix("https://tend.test")
    token = path.removeprefix("/check-in/")
    # The token names this occurrence and works until a week after its window closes.
    link = read_check_in(h.runtime.secret, token)
    assert link is not None
    row = occurrence(h, "walk:2026-03-02")
    assert link.occurrence_id == row["id"]
    assert link.expires == row["window_end"] + timedelta(days=7) == WINDOW_END + timedelta(days=7)
    # Every email's link is its own occurrence's.
    tokens = {re.findall(r"/check-in/(\S+)", m.body)[0] for m in h.email.sent}
    assert len(tokens) == 4

    h.clock.set(DURING)
    page = client.get(path)
    assert page.status_code == 200
    assert "<h1>Evening walk</h1>" in page.text
    assert post(client, token, "outcome=done").status_code == 200
    assert occurrence(h, "walk:2026-03-02")["check_in"] == "done"
    # The reminder reached them and the check-in counts: after the window, done, not missed.
    h.clock.set(WINDOW_END)
    h.scheduler.maintain(force=True)
    assert occurrence(h, "walk:2026-03-02")["check_in"] == "done"
    assert occurrence(h, "mood:2026-03-02")["check_in"] == "missed"
