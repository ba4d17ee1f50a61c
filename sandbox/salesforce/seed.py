"""Seed the org with people as real orgs hold them: Accounts, Contacts, Leads, and some mess.

The mess is deliberate and deterministic per seed: a few Leads duplicated under the same email
(the copy modified earlier), emails in odd letter case, and some Leads whose email also belongs to
a Contact -- the cases mcsf's email matching must get right.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.salesforce.dml import Writer
from sandbox.salesforce.records import RowIn
from sandbox.salesforce.store import Store, q
from sandbox.salesforce.values import format_datetime

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("sandbox.salesforce.seed")
ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)  # fixed, so a seed gives the same org every time
DUPLICATE_SHARE = 0.03
ODD_CASE_SHARE = 0.08
LEAD_ALSO_CONTACT_SHARE = 0.02


def _odd_case(rng: random.Random, email: str) -> str:
    local, _, domain = email.partition("@")
    style = rng.choice(("upper", "title", "domain"))
    if style == "upper":
        return email.upper()
    if style == "title":
        return local[:1].upper() + local[1:] + "@" + domain
    return local + "@" + domain.upper()


def _stamp(rng: random.Random) -> tuple[str, str]:
    created = ANCHOR - timedelta(days=rng.uniform(30, 730))
    modified = created + timedelta(days=rng.uniform(0, (ANCHOR - created).days))
    return format_datetime(created), format_datetime(modified)


def seed_org(state_dir: Path, people: list[dict[str, Any]], seed: int) -> None:
    """Write Accounts, Contacts and Leads for ``people`` into the org in ``state_dir`` (once per seed).

    :param people: ``{"email","first_name","last_name","company","phone","kind": "Contact"|"Lead"}``
    """
    store = Store(state_dir)
    if store.kv_get("seeded") == str(seed):
        return
    rng = random.Random(seed)
    schema, writer = store.schema, Writer(store)
    lead_obj, contact_obj, account_obj = (schema.objects[n] for n in ("Lead", "Contact", "Account"))
    statuses = [p.value for p in lead_obj.fields["Status"].picklist]
    sources = [p.value for p in lead_obj.fields["LeadSource"].picklist]

    def email_of(p: dict[str, Any]) -> str | None:
        email = p.get("email") or None
        return _odd_case(rng, email) if email and rng.random() < ODD_CASE_SHARE else email

    contacts = [p for p in people if p.get("kind") == "Contact"]
    leads = [p for p in people if p.get("kind") != "Contact"]
    companies = sorted({p.get("company") or "Unknown" for p in contacts})
    account_rows = [RowIn(values={"Name": name[:255]}) for name in companies]
    contact_rows = [RowIn(values={"FirstName": p.get("first_name"), "LastName": p.get("last_name") or "Unknown",
                                  "Email": email_of(p), "Phone": p.get("phone"),
                                  "LeadSource": rng.choice(sources)}) for p in contacts]
    lead_rows = []
    for p in leads:
        values = {"FirstName": p.get("first_name"), "LastName": p.get("last_name") or "Unknown",
                  "Company": p.get("company") or "[not provided]", "Email": email_of(p), "Phone": p.get("phone"),
                  "Status": rng.choice(statuses), "LeadSource": rng.choice(sources)}
        lead_rows.append(RowIn(values=values))
        if p.get("email") and rng.random() < DUPLICATE_SHARE:
            dup = dict(values, Email=_odd_case(rng, p["email"]), Status=statuses[0])
            lead_rows.append(RowIn(values=dup))
    for p in rng.sample(contacts, int(len(contacts) * LEAD_ALSO_CONTACT_SHARE)):
        lead_rows.append(RowIn(values={"FirstName": p.get("first_name"), "LastName": p.get("last_name") or "Unknown",
                                       "Company": p.get("company") or "[not provided]", "Email": p.get("email"),
                                       "Status": statuses[0]}))

    def coerce(obj: Any, rows: list[RowIn]) -> list[RowIn]:
        from sandbox.salesforce.rowparse import Parser
        parser = Parser(schema)
        return [parser.json_row(obj, {k: v for k, v in r.values.items() if v is not None}, "insert") for r in rows]

    with store.transaction() as c:
        accounts = writer.apply(c, account_obj, "insert", coerce(account_obj, account_rows))
        account_ids = {name: r.id for name, r in zip(companies, accounts, strict=True)}
        for p, row in zip(contacts, contact_rows, strict=True):
            row.values["AccountId"] = account_ids.get(p.get("company") or "Unknown")
        done = [(account_obj, accounts),
                (contact_obj, writer.apply(c, contact_obj, "insert", coerce(contact_obj, contact_rows))),
                (lead_obj, writer.apply(c, lead_obj, "insert", coerce(lead_obj, lead_rows)))]
        for obj, results in done:
            stamps = []
            for res in results:
                if res.errors:
                    log.warning("seed: skipped one %s: %s", obj.name, res.errors[0]["message"])
                    continue
                created, modified = _stamp(rng)
                stamps.append((created, modified, modified, res.id))
            c.executemany(f'UPDATE {q(obj.name)} SET CreatedDate = ?, LastModifiedDate = ?, SystemModstamp = ? '
                          'WHERE "Id" = ?', stamps)
        c.execute("INSERT OR REPLACE INTO _sf_kv VALUES ('seeded', ?)", (str(seed),))
