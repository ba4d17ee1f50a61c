"""Pure parts of the nightly activity sync: keys, window cuts, URL limits, campaign rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from mcsf.activity import _in_window, activity_key, campaign_row, map_events
from mcsf.staging import Window

DAY = Window(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))


@pytest.mark.parametrize(
    ("timestamp", "inside"),
    [("2026-11-20T00:00:00+00:00", True), ("2026-11-20T23:59:59+00:00", True),
     ("2026-11-21T00:00:00+00:00", False), ("2026-11-19T23:59:59+00:00", False),
     ("2026-11-21T00:30:00+01:00", True), (None, False)],
)
def test_an_event_belongs_to_exactly_one_day(timestamp, inside):
    assert _in_window(timestamp, DAY) is inside


def events(*rows):
    return pd.DataFrame(rows, columns=["campaign_id", "email_hash", "action", "type", "timestamp", "url"])


def test_keys_are_deterministic_and_duplicates_collapse():
    frame = events(("c1", "h1", "open", None, "2026-11-20T10:00:00+00:00", None),
                   ("c1", "h1", "open", None, "2026-11-20T10:00:00Z", None),
                   ("c1", "h1", "click", None, "2026-11-20T10:00:00Z", "https://x.io/a"))
    rows = map_events(frame, "L1")
    assert len(rows) == 2
    assert rows.iloc[0]["MC_Activity_Key__c"] == activity_key("c1", "h1", "open", "2026-11-20T10:00:00.000Z", "")
    assert rows.iloc[0]["Subscriber__r.MC_Subscriber_Key__c"] == "L1:h1"


def test_long_and_non_ascii_urls_keep_their_full_text():
    long_url = "https://example.com/ß/" + "x" * 400
    rows = map_events(events(("c1", "h1", "click", None, "2026-11-20T10:00:00Z", long_url)), "L1")
    assert len(rows.iloc[0]["URL__c"]) == 255 and rows.iloc[0]["URL__c"].endswith("…")
    assert rows.iloc[0]["Full_URL__c"] == long_url


def test_bounce_type_only_on_bounces_and_missing_member_flagged():
    rows = map_events(events(("c1", "h1", "bounce", "hard", "2026-11-20T10:00:00Z", None),
                             ("c1", None, "open", "x", "2026-11-20T10:00:00Z", None)), "L1")
    assert rows.iloc[0]["Bounce_Type__c"] == "hard"
    assert pd.isna(rows.iloc[1]["Bounce_Type__c"])
    assert rows.iloc[1]["_reasons"] == "event without a member id"


def test_campaign_row():
    row = campaign_row({"id": "c1", "type": "regular", "status": "sent", "send_time": "2026-11-20T08:00:00+00:00",
                        "emails_sent": 10, "recipients": {"list_id": "L1"},
                        "settings": {"title": "Nov news", "subject_line": "Hello"},
                        "report_summary": {"opens": 5, "unique_opens": 4, "clicks": 2, "subscriber_clicks": 1}})
    assert row["Audience__r.MC_Audience_Id__c"] == "L1"
    assert (row["Name"], row["Subject__c"], row["Emails_Sent__c"], row["Opens__c"]) == ("Nov news", "Hello", "10", "5")
    assert row["Send_Time__c"] == "2026-11-20T08:00:00.000Z"
