"""Deterministic seed of the Mailchimp emulator: audiences, members, segments, campaigns, activity.

Everything derives from ``random.Random(seed)`` and the anchor time, so two runs with the same
arguments produce byte-identical state. Members' ``last_changed`` spread over the three weeks
before the anchor (a few exactly on the hour, to exercise window edges), campaigns were sent
in the last week, and activity follows each send. Rows go in with ``executemany`` inside one
transaction per table, with secondary indexes dropped during the load.
"""

from __future__ import annotations

import bisect
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from sandbox.mailchimp import timeutil
from sandbox.mailchimp.account import ensure_account
from sandbox.mailchimp.campaigns import TYPES, campaign_doc, insert_campaign, refresh_stats
from sandbox.mailchimp.interests import insert_category, insert_interest
from sandbox.mailchimp.lists import new_list_doc
from sandbox.mailchimp.lookups import email_hash
from sandbox.mailchimp.mergefields import add_default_fields, insert_field
from sandbox.mailchimp.store import INDEXES
from sandbox.people import build_people, salesforce_people, vary_case

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.mailchimp.store import Store

LIST_NAMES = ("Newsletter", "Customers", "Events", "Partners", "Webinar Attendees", "Product Updates")
STATUS_WEIGHTS = {"subscribed": 80, "unsubscribed": 8, "cleaned": 3, "pending": 4, "transactional": 3, "archived": 2}
TAG_NAMES = ("VIP", "Webinar 2026", "Messe Köln", "Churn risk", "Beta tester", "Partner referral")
SOURCES = ("Import", "Admin Add", "API - Generic", "Hosted Signup Form", "Landing Page")
CLIENTS = ("", "Gmail", "Apple Mail", "Outlook 2019", "iPhone", "Android", "Yahoo! Mail")
URLS = (
    "https://www.example.com/pricing?utm_source=mailchimp&utm_medium=email",
    "https://blog.example.com/2026/11/release-notes",
    "https://shop.example.com/products/" + "very-long-product-slug-" * 10 + "?ref=" + "x" * 180,
    "https://café.example.fr/menü/spécial?plat=crème brûlée",
    "https://例え.jp/ニュース/記事?id=42",
    "https://example.de/straße/größe?farbe=grün",
    "https://events.example.com/register?e=🎉&lang=pt-BR",
)


@dataclass(frozen=True)
class SeedSizes:
    audiences: int = 3
    members: int = 2000
    campaigns: int = 12
    activity_events: int = 20000


def _ip(rng: random.Random) -> str:
    a, b, c, d = rng.getrandbits(32).to_bytes(4, "big")
    return f"{11 + a % 212}.{b}.{c}.{1 + d % 254}"


def _ts(epoch: int) -> str:
    """Epoch seconds in Mailchimp's form; ``time.strftime`` is several times faster than datetime here."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def _picker(weights: dict[Any, int]) -> Callable[[float], Any]:
    """Weighted choice from one ``random()`` draw (``random.choices`` costs ten times more per call)."""
    keys, cumulative, total = list(weights), [], 0
    for weight in weights.values():
        total += weight
        cumulative.append(total / sum(weights.values()))
    return lambda draw: keys[min(bisect.bisect_right(cumulative, draw), len(keys) - 1)]


def _messy(rng: random.Random, value: str) -> str:
    """Mostly the value; sometimes blank, sometimes wrapped in whitespace (as real imports are)."""
    roll = rng.random()
    if roll < 0.05:
        return ""
    if roll < 0.07:
        return f"  {value} "
    return value


def _extra_fields(index: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    kinds = (
        [("WEBSITE", "Website", "url", {})],
        [("LTV", "Lifetime value", "number", {}),
         ("REGION", "Region", "dropdown", {"choices": ["North America", "EMEA", "APAC", "LATAM"]})],
        [("EVENTDATE", "Event date", "date", {"date_format": "MM/DD/YYYY"}),
         ("TSHIRT", "T-shirt size", "radio", {"choices": ["S", "M", "L", "XL"]})],
    )
    return kinds[index % len(kinds)]


def _extra_value(rng: random.Random, tag: str, anchor: datetime) -> Any:
    if rng.random() < 0.3:
        return ""
    if tag == "WEBSITE":
        return f"https://www.example{rng.randrange(1000)}.com/"
    if tag == "LTV":
        return round(rng.uniform(0, 5000), 2) if rng.random() < 0.7 else rng.randrange(0, 20000)
    if tag == "REGION":
        return rng.choice(["North America", "EMEA", "APAC", "LATAM"])
    if tag == "EVENTDATE":
        return (anchor + timedelta(days=rng.randrange(-300, 200))).date().isoformat()
    return rng.choice(["S", "M", "L", "XL"])


def seed_mailchimp(store: Store, seed: int, anchor: datetime, sizes: SeedSizes) -> list[dict[str, Any]]:
    """Fill an empty store; returns the people chosen to pre-exist in Salesforce."""
    rng = random.Random(seed)
    anchor = anchor.astimezone(timeutil.UTC).replace(microsecond=0)
    anchor_text = timeutil.fmt(anchor)
    ensure_account(store, seed, anchor_text)
    store.set_meta("seed", {"seed": seed, "anchor": anchor_text, **sizes.__dict__})
    per_list = sizes.members
    population = max(per_list, int(sizes.audiences * per_list * 0.7))
    people = build_people(population, seed)
    conn = store.conn()
    index_names = re.findall(r"INDEX IF NOT EXISTS (\w+)", INDEXES)
    for name in index_names:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    conn.execute("PRAGMA synchronous=OFF")
    lists: list[tuple[str, list[int]]] = []
    # Ids first, so an audience keeps its id whatever the seed's sizes (mapping files name them).
    list_ids = [f"{rng.getrandbits(40):010x}" for _ in range(sizes.audiences)]
    with store.write() as w:
        for index in range(sizes.audiences):
            lists.append(_seed_list(w, rng, index, list_ids[index], people, per_list, anchor))
    with store.write() as w:
        _seed_campaigns(w, rng, lists, sizes, anchor)
    conn.executescript(INDEXES)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("ANALYZE")
    return salesforce_people(people, seed)


def _seed_list(conn: Any, rng: random.Random, index: int, list_id: str, people: list[dict[str, Any]], count: int,
               anchor: datetime) -> tuple[str, list[int]]:
    rounds, slot = divmod(index, len(LIST_NAMES))
    name = LIST_NAMES[slot] + (f" {rounds + 1}" if rounds else "")
    created = timeutil.fmt(anchor - timedelta(days=rng.randrange(400, 1500), seconds=rng.randrange(86400)))
    body = {"contact": {"company": "mcsf Sandbox Co.", "address1": "675 Ponce de Leon Ave NE", "city": "Atlanta",
                        "state": "GA", "zip": "30308", "country": "US"},
            "permission_reminder": f"You signed up for {name} on our website.",
            "campaign_defaults": {"from_name": "mcsf Sandbox", "from_email": "news@sandbox.example.com",
                                  "subject": "", "language": "en"}, "email_type_option": index % 2 == 0}
    web_id = 100_000 + index
    doc = new_list_doc(body, list_id, web_id)
    doc["stats_last_sub_date"] = timeutil.fmt(anchor - timedelta(minutes=rng.randrange(5, 300)))
    doc["stats_last_unsub_date"] = timeutil.fmt(anchor - timedelta(minutes=rng.randrange(5, 3000)))
    conn.execute("INSERT INTO lists(id, web_id, name, date_created, doc) VALUES(?,?,?,?,?)",
                 (list_id, web_id, name, created, orjson.dumps(doc).decode()))
    add_default_fields(conn, list_id)
    insert_field(conn, list_id, "COMPANY", "Company", "text")
    insert_field(conn, list_id, "BIRTHDAY", "Birthday", "birthday")
    extras = _extra_fields(index)
    for tag, label, kind, options in extras:
        insert_field(conn, list_id, tag, label, kind, options=options)
    def hex_id() -> str:
        return f"{rng.getrandbits(40):010x}"

    topics = insert_category(conn, list_id, "Topics", "checkboxes", cid=hex_id())
    topic_ids = [insert_interest(conn, list_id, topics, n, iid=hex_id()) for n in
                 ("Product news", "Tips & tutorials", "Events", "Ünïcödé & émojis 🎉")]
    freq = insert_category(conn, list_id, "Frequency", "radio", cid=hex_id())
    freq_ids = [insert_interest(conn, list_id, freq, n, iid=hex_id()) for n in ("Weekly", "Monthly")]
    pick_status = _picker(STATUS_WEIGHTS)
    pick_rating = _picker({1: 5, 2: 40, 3: 25, 4: 20, 5: 10})
    now = int(anchor.timestamp())
    window, years = 21 * 86400, 3 * 365 * 86400
    picked = rng.sample(range(len(people)), min(count, len(people)))
    rand = rng.random

    def rows() -> Any:
        for n, person_index in enumerate(picked):
            p = people[person_index]
            email = vary_case(rng, p["email"]) if rand() < 0.1 else p["email"]
            status = pick_status(rand())
            changed = now - 1 - int(rand() * (window - 1))
            if rand() < 0.01:
                changed -= changed % 3600
            signup = changed - int(rand() * years)
            opted = status in ("subscribed", "unsubscribed", "cleaned")
            opt = signup + int((changed - signup) * rand()) if opted else 0
            merge = {"FNAME": _messy(rng, p["first_name"]), "LNAME": _messy(rng, p["last_name"]),
                     "ADDRESS": p["address"] if rand() < 0.5 else "", "PHONE": p["phone"] if rand() < 0.6 else "",
                     "COMPANY": _messy(rng, p["company"]) if rand() < 0.7 else "",
                     "BIRTHDAY": p["birthday"] if rand() < 0.4 else ""}
            for tag, *_ in extras:
                merge[tag] = _extra_value(rng, tag, anchor)
            chosen = [i for i in topic_ids if rand() < 0.3]
            if rand() < 0.7:
                chosen.append(freq_ids[rand() < 0.5])
            located = rand() < 0.6
            location = {"latitude": round(rand() * 130 - 60, 4) if located else 0,
                        "longitude": round(rand() * 340 - 170, 4) if located else 0, "gmtoff": 0, "dstoff": 0,
                        "country_code": p["country_code"] if located else "",
                        "timezone": p["timezone"] if located else ""}
            with_signup = rand() < 0.8
            yield (list_id, email_hash(email), email, f"{rng.getrandbits(40):010x}", f"{rng.getrandbits(128):032x}",
                   10_000_000 + index * 10_000_000 + n, "html" if rand() < 0.95 else "text", status,
                   orjson.dumps(merge).decode(), ("," + ",".join(chosen) + ",") if chosen else "",
                   round(rand() * 0.6, 2), round(rand() * 0.2, 2),
                   _ip(rng) if with_signup else "", _ts(signup) if with_signup else "",
                   _ip(rng) if opt else "", _ts(opt) if opt else "", pick_rating(rand()), _ts(changed),
                   p["language"], int(rand() < 0.02), CLIENTS[int(rand() * len(CLIENTS))],
                   orjson.dumps(location).decode(), SOURCES[int(rand() * len(SOURCES))])

    conn.executemany(
        "INSERT INTO members(list_id, hash, email_address, unique_email_id, contact_id, web_id, email_type, status, "
        "merge_fields, interests, avg_open_rate, avg_click_rate, ip_signup, timestamp_signup, ip_opt, timestamp_opt, "
        "member_rating, last_changed, language, vip, email_client, location, source) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
    members = conn.execute("SELECT seq, last_changed FROM members WHERE list_id=? ORDER BY seq", (list_id,)).fetchall()
    for tag in rng.sample(TAG_NAMES, 4):
        seg_time = timeutil.fmt(anchor - timedelta(days=rng.randrange(22, 200)))
        seg_id = conn.execute("INSERT INTO segments(list_id, name, type, created_at, updated_at, options) "
                              "VALUES(?,?,'static',?,?,'{}')", (list_id, tag, seg_time, seg_time)).lastrowid
        share = rng.uniform(0.05, 0.15)
        chosen_members = [(seg_id, seq, changed) for seq, changed in members if rng.random() < share]
        conn.executemany("INSERT INTO segment_members VALUES(?,?,?)", chosen_members)
        if chosen_members:
            conn.execute("UPDATE segments SET updated_at=? WHERE id=?", (max(c for *_, c in chosen_members), seg_id))
    for seg_name, options in (
            ("Engaged (rating 4+)", {"match": "all", "conditions": [
                {"condition_type": "MemberRating", "field": "rating", "op": "greater", "value": 3}]}),
            ("Gmail or Outlook", {"match": "any", "conditions": [
                {"condition_type": "EmailAddress", "field": "EMAIL", "op": "contains", "value": "gmail.com"},
                {"condition_type": "EmailAddress", "field": "EMAIL", "op": "contains", "value": "outlook.com"}]}),
            ("Interested in events", {"match": "all", "conditions": [
                {"condition_type": "Interests", "field": f"interests-{topics}", "op": "interestcontains",
                 "value": [topic_ids[2]]}]})):
        seg_time = timeutil.fmt(anchor - timedelta(days=rng.randrange(1, 60), seconds=rng.randrange(86400)))
        conn.execute("INSERT INTO segments(list_id, name, type, created_at, updated_at, options) "
                     "VALUES(?,?,'saved',?,?,?)",
                     (list_id, seg_name, seg_time, seg_time, orjson.dumps(options).decode()))
    return list_id, [seq for seq, _ in members]


def _seed_campaigns(conn: Any, rng: random.Random, lists: list[tuple[str, list[int]]], sizes: SeedSizes,
                    anchor: datetime) -> None:
    if not lists:
        return
    sent: list[tuple[int, str, list[int]]] = []
    for n in range(sizes.campaigns):
        list_id, _ = lists[n % len(lists)]
        type_ = TYPES[n % len(TYPES)]
        status = "save" if n == sizes.campaigns - 1 else "schedule" if n == sizes.campaigns - 2 else "sent"
        if status == "sent":
            send_at = anchor - timedelta(seconds=rng.randrange(3600, 7 * 86400))
        else:
            send_at = anchor + timedelta(days=1) if status == "schedule" else None
        created = (send_at or anchor) - timedelta(days=rng.randrange(1, 10), seconds=rng.randrange(86400))
        topic = rng.choice(("Herbst-Angebote", "Novidades", "Product news", "Soirée clients", "新製品"))
        title = f"{type_.capitalize()} #{n + 1}: {topic}"
        extra: dict[str, Any] = {}
        if type_ == "rss":
            extra["rss_opts"] = {"feed_url": "https://blog.example.com/feed.xml", "frequency": "daily",
                                 "schedule": {"hour": 9, "weekly_send_day": "monday", "monthly_send_date": 1},
                                 "last_sent": timeutil.fmt(send_at) if send_at else "", "constrain_rss_img": False}
        if type_ == "absplit":
            extra["ab_split_opts"] = {"split_test": "subject", "pick_winner": "opens", "wait_units": "hours",
                                      "wait_time": 4, "split_size": 20, "subject_a": f"{title} (A)",
                                      "subject_b": f"{title} (B)", "send_time_winner": ""}
        if type_ == "variate":
            extra["variate_settings"] = {"winner_criteria": "opens", "wait_time": 240, "test_size": 20,
                                         "subject_lines": [f"{title} (1)", f"{title} (2)"], "send_times": [],
                                         "from_names": [], "reply_to_addresses": [], "contents": [],
                                         "combinations": []}
        doc = campaign_doc(type_, title, f"{title} — {rng.choice(('🎉', '', '¡Hola!', 'Grüße'))}".strip(" —"),
                           "mcsf Sandbox", "news@sandbox.example.com", "Read this in your browser", extra=extra)
        seq = insert_campaign(conn, f"{rng.getrandbits(40):010x}", 500_000 + n, type_, status, list_id, None,
                              timeutil.fmt(created), timeutil.fmt(send_at) if send_at else "", doc)
        if status == "sent":
            recipients = [r[0] for r in conn.execute(
                "SELECT seq FROM members WHERE list_id=? AND status IN ('subscribed','unsubscribed','cleaned') "
                "AND timestamp_opt<? ORDER BY seq", (list_id, timeutil.fmt(send_at)))]
            group = _picker({"a": 1, "b": 1, "winner": 8}) if type_ in ("absplit", "variate") else None
            conn.executemany("INSERT INTO sends VALUES(?,?,'sent',?)",
                             ((seq, m, group(rng.random()) if group else "") for m in recipients))
            sent.append((seq, timeutil.fmt(send_at), recipients))
    _seed_activity(conn, rng, sent, sizes.activity_events, anchor)
    for seq, *_ in sent:
        refresh_stats(conn, seq)


def _seed_activity(conn: Any, rng: random.Random, sent: list[tuple[int, str, list[int]]], events: int,
                   anchor: datetime) -> None:
    weights = [len(r) for _, _, r in sent]
    if not sent or not sum(weights):
        return
    anchor_ts = int(anchor.timestamp())
    starts = [int(timeutil.parse(send_time).timestamp()) for _, send_time, _ in sent]
    pick_campaign = _picker(dict(enumerate(weights)))
    bounced: set[tuple[int, int]] = set()
    rows, bounce_rows = [], []
    rand = rng.random
    for _ in range(events):
        which = pick_campaign(rand())
        seq, recipients = sent[which][0], sent[which][2]
        member = recipients[int(rand() * len(recipients))]
        when = _ts(min(starts[which] + int(rng.expovariate(1 / 21600)), anchor_ts - 1))
        roll = rand()
        if roll < 0.05 and (seq, member) not in bounced:
            bounced.add((seq, member))
            kind = "hard" if rand() < 0.3 else "soft"
            bounce_rows.append((kind, seq, member))
            rows.append((seq, member, "bounce", kind, when, "", ""))
        elif roll < 0.35:
            rows.append((seq, member, "click", "", when, URLS[int(rand() * len(URLS))], _ip(rng)))
        else:
            rows.append((seq, member, "open", "", when, "", _ip(rng)))
    conn.executemany("INSERT INTO activity(campaign_seq, member_seq, action, type, timestamp, url, ip) "
                     "VALUES(?,?,?,?,?,?,?)", rows)
    conn.executemany("UPDATE sends SET status=? WHERE campaign_seq=? AND member_seq=?", bounce_rows)
    unsub_rows = []
    done: set[int] = set()
    for (seq, _, _), start in zip(sent, starts, strict=True):
        candidates = [r[0] for r in conn.execute(
            "SELECT s.member_seq FROM sends s JOIN members m ON m.seq=s.member_seq WHERE s.campaign_seq=? "
            "AND m.status='unsubscribed'", (seq,))]
        for member in candidates:
            if member not in done and rng.random() < 0.3:
                done.add(member)
                stamp = min(start + int(rng.expovariate(1 / 43200)), anchor_ts - 1)
                unsub_rows.append((seq, member, _ts(stamp),
                                   rng.choice(("", "NORMAL", "I no longer want to receive these emails",
                                               "Les e-mails sont trop fréquents"))))
    conn.executemany("INSERT INTO unsubscribes VALUES(?,?,?,?)", unsub_rows)
    conn.executemany("UPDATE members SET last_changed=max(last_changed, ?) WHERE seq=?",
                     ((ts, member) for _, member, ts, _ in unsub_rows))
