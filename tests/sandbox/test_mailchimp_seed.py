"""The seed is reproducible and as messy as promised."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from sandbox.mailchimp.seed import SeedSizes, seed_mailchimp
from sandbox.mailchimp.store import Store

if TYPE_CHECKING:
    from pathlib import Path

ANCHOR = datetime(2026, 11, 20, 10, tzinfo=UTC)
SIZES = SeedSizes(audiences=3, members=400, campaigns=7, activity_events=1500)
TABLES = ("lists", "merge_fields", "interest_categories", "interests", "members", "segments", "segment_members",
          "campaigns", "sends", "activity", "unsubscribes", "meta")


def _dump(state: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(state / "mailchimp.sqlite3")
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    state = tmp_path_factory.mktemp("seed-a")
    return state, seed_mailchimp(Store(state), 11, ANCHOR, SIZES)


def test_same_seed_same_state_other_seed_other_state(seeded: tuple[Path, list[dict[str, object]]],
                                                      tmp_path: Path) -> None:
    state, people = seeded
    again = seed_mailchimp(Store(tmp_path / "b"), 11, ANCHOR, SIZES)
    assert _dump(tmp_path / "b") == _dump(state) and again == people
    other = seed_mailchimp(Store(tmp_path / "c"), 12, ANCHOR, SIZES)
    assert _dump(tmp_path / "c")["members"] != _dump(state)["members"] and other != people


def test_seed_is_messy_like_real_audiences(seeded: tuple[Path, list[dict[str, object]]]) -> None:
    state, people = seeded
    conn = sqlite3.connect(state / "mailchimp.sqlite3")
    members = conn.execute("SELECT list_id, hash, email_address, status, merge_fields, last_changed "
                           "FROM members").fetchall()
    assert {m[3] for m in members} == {"subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"}
    emails_by_hash: dict[str, set[str]] = {}
    for _, digest, email, *_ in members:
        emails_by_hash.setdefault(digest, set()).add(email)
    assert any(len(v) > 1 for v in emails_by_hash.values())  # same person, other case, other audience
    assert sum(len(v) == 1 for v in emails_by_hash.values()) < len(members)  # people in several audiences
    merges = [m[4] for m in members]
    assert any('"FNAME":""' in m for m in merges) and any('"FNAME":"  ' in m for m in merges)
    assert any(not merge.isascii() for merge in merges)  # accents, CJK, Cyrillic
    oldest = (ANCHOR - timedelta(days=21)).isoformat()
    assert all(oldest <= m[5] < ANCHOR.isoformat() for m in members)
    assert any(m[5].endswith(":00:00+00:00") for m in members)
    types = Counter(r[0] for r in conn.execute("SELECT type FROM campaigns"))
    assert set(types) == {"regular", "plaintext", "absplit", "rss", "variate", "sms"}
    actions = Counter(r[0] for r in conn.execute("SELECT action FROM activity"))
    assert set(actions) == {"open", "click", "bounce"}
    assert conn.execute("SELECT COUNT(*) FROM unsubscribes").fetchone()[0] > 0
    assert {p["kind"] for p in people} == {"Contact", "Lead"}
    assert 0.1 < len({str(p["email"]).lower() for p in people}) / len(emails_by_hash) < 0.3
