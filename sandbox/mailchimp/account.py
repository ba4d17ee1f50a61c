"""The account behind the API key: ``GET /`` (API root), ``GET /ping``, and its creation.

The key has the real form (32 hex + ``-us1``) and is derived from the seed, so a test, a demo
and a developer's shell agree on it without passing it around.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Any

from sandbox.mailchimp.gateway import DATACENTER
from sandbox.mailchimp.links import link
from sandbox.mailchimp.params import PROJECTION
from sandbox.mailchimp.routing import Api, Call

if TYPE_CHECKING:
    from sandbox.mailchimp.store import Store

api = Api("/3.0")
ROLES = ("owner", "admin", "manager", "author", "viewer")


def api_key_for(seed: int) -> str:
    return hashlib.sha256(f"mcsf-sandbox-mailchimp-{seed}".encode()).hexdigest()[:32] + f"-{DATACENTER}"


def ensure_account(store: Store, seed: int, anchor: str) -> None:
    """Create the account and API key once; later runs keep what the state dir holds."""
    if store.meta("api_key") is not None:
        return
    rng = random.Random(seed)
    store.set_meta("api_key", api_key_for(seed))
    store.set_meta("account", {
        "account_id": f"{rng.getrandbits(100):025x}", "login_id": str(rng.randrange(10**8, 10**9)),
        "account_name": "mcsf Sandbox Co.", "email": "owner@sandbox.example.com", "first_name": "Sandy",
        "last_name": "Box", "username": "sandbox.owner", "role": "owner", "member_since": "2019-03-14T09:30:00+00:00",
        "pricing_plan_type": "monthly", "first_payment": "2019-04-14T09:30:00+00:00",
        "account_timezone": "America/New_York", "account_industry": "Software", "last_login": anchor,
        "contact": {"company": "mcsf Sandbox Co.", "addr1": "675 Ponce de Leon Ave NE", "addr2": "Suite 5000",
                    "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US"},
    })


@api.route("GET", "/ping")
def ping(call: Call) -> dict[str, Any]:
    return {"health_status": "Everything's Chimpy!"}


@api.route("GET", "/", params=PROJECTION)
def root(call: Call) -> dict[str, Any]:
    account = dict(call.store.meta("account"))
    total = call.store.conn().execute("SELECT COUNT(*) FROM members WHERE status='subscribed'").fetchone()[0]
    account.update({
        "avatar_url": "", "pro_enabled": False, "total_subscribers": total,
        "industry_stats": {"open_rate": 0.2194, "bounce_rate": 0.0046, "click_rate": 0.0262},
        "_links": [link(rel, f"{call.base}/{path}", target=f"Definitions/{name}/CollectionResponse.json")
                   for rel, path, name in (("lists", "lists", "Lists"), ("campaigns", "campaigns", "Campaigns"),
                                           ("reports", "reports", "Reports"), ("batches", "batches", "Batches"))],
    })
    return account
