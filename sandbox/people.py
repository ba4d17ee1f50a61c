"""A deterministic population of people, shared by the Mailchimp and Salesforce seeds.

Faker is slow per call, so it is asked once for small pools of names, companies, addresses
and phone numbers in several locales; people are then combined from the pools with one
``random.Random(seed)``, which keeps a million people to seconds and any seed reproducible.
Emails are unique case-insensitively; the *messiness* (case variants, blanks, whitespace) is
applied by each seed on top, where it belongs.
"""

from __future__ import annotations

import functools
import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any

LOCALES = {  # locale: (weight, language code, country code, time zone)
    "en_US": (40, "en", "US", "America/New_York"), "en_GB": (8, "en", "GB", "Europe/London"),
    "de_DE": (8, "de", "DE", "Europe/Berlin"), "fr_FR": (7, "fr", "FR", "Europe/Paris"),
    "es_ES": (6, "es", "ES", "Europe/Madrid"), "it_IT": (4, "it", "IT", "Europe/Rome"),
    "pt_BR": (6, "pt", "BR", "America/Sao_Paulo"), "pl_PL": (3, "pl", "PL", "Europe/Warsaw"),
    "sv_SE": (2, "sv", "SE", "Europe/Stockholm"), "tr_TR": (2, "tr", "TR", "Europe/Istanbul"),
    "ru_RU": (4, "ru", "RU", "Europe/Moscow"), "ja_JP": (5, "ja", "JP", "Asia/Tokyo"),
    "zh_CN": (5, "zh", "CN", "Asia/Shanghai"),
}
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me", "gmx.de", "web.de",
             "orange.fr", "libero.it", "mail.ru", "yandex.ru", "qq.com", "163.com", "yahoo.co.jp", "aol.com")
_FOLD = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "æ": "ae", "Æ": "AE", "ı": "i",
                       "đ": "d", "œ": "oe", "þ": "th", "ð": "d"})
POOL = 80


@dataclass
class LocalePool:
    firsts: list[str] = field(default_factory=list)
    lasts: list[str] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    addresses: list[dict[str, str]] = field(default_factory=list)
    romanized: list[tuple[str, str]] = field(default_factory=list)


@functools.cache
def ascii_fold(text: str) -> str:
    """Best-effort ASCII for email local parts ("Jürgen" -> "jurgen"); empty for CJK/Cyrillic."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum())).lower()


@functools.lru_cache(maxsize=4)
def _pools(seed: int) -> dict[str, LocalePool]:
    """Faker's pools for one seed (cached: building 13 Faker instances costs about a second)."""
    from faker import Faker

    pools = {}
    for i, (locale, (_, _, country, _)) in enumerate(LOCALES.items()):
        fake = Faker(locale, use_weighting=False)
        fake.seed_instance(seed * 1000 + i)
        for provider in fake.get_providers():
            # Faker's it_IT builds its city list from a set, so its order (and so the city a seed
            # picks) changed with PYTHONHASHSEED; sorted, the same seed gives the same data.
            if isinstance(getattr(provider, "cities", None), list):
                provider.cities = sorted(provider.cities)
        pool = LocalePool()
        for _ in range(POOL):
            pool.firsts.append(fake.first_name())
            pool.lasts.append(fake.last_name())
        for _ in range(POOL // 2):
            pool.companies.append(fake.company())
            pool.phones.append(fake.phone_number())
            state = fake.state() if hasattr(fake, "state") else fake.city()
            pool.addresses.append({"addr1": fake.street_address(), "addr2": "", "city": fake.city(),
                                   "state": state, "zip": fake.postcode(), "country": country})
        if hasattr(fake, "first_romanized_name"):
            pool.romanized = [(fake.first_romanized_name(), fake.last_romanized_name()) for _ in range(POOL)]
        pools[locale] = pool
    return pools


def _local_part(rng: random.Random, first: str, last: str) -> str:
    f, la = ascii_fold(first) or "user", ascii_fold(last) or "mail"
    pattern = rng.randrange(7)
    if pattern == 0:
        return f"{f}.{la}"
    if pattern == 1:
        return f"{f[0]}{la}"
    if pattern == 2:
        return f"{f}{la}{rng.randrange(1, 99)}"
    if pattern == 3:
        return f"{f}_{la}"
    if pattern == 4:
        return f"{la}.{f}{rng.randrange(60, 99)}"
    if pattern == 5:
        return f"{f}+news"
    return f"{f}{rng.randrange(1000, 9999)}"


def _domain(rng: random.Random, company: str) -> str:
    if rng.random() < 0.7:
        return rng.choice(FREE_MAIL)
    slug = ascii_fold(company.split(",")[0].split(" ")[0]) or "company"
    return f"{slug}.{rng.choice(('com', 'de', 'co.uk', 'fr', 'io', 'net'))}"


def build_people(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` distinct people with a unique (case-insensitive) email each.

    :returns: dicts with email, first_name, last_name, company, phone, birthday (MM/DD),
        address, locale, language, country_code, timezone
    """
    rng = random.Random(seed)
    pools = _pools(seed)
    locales = list(LOCALES)
    weights = [LOCALES[loc][0] for loc in locales]
    seen: set[str] = set()
    people = []
    rand = rng.random

    def pick(items: list[Any]) -> Any:  # rng.choice is several times slower, and a million calls add up
        return items[int(rand() * len(items))]

    for locale in rng.choices(locales, weights, k=count):
        pool = pools[locale]
        first, last = pick(pool.firsts), pick(pool.lasts)
        ascii_first, ascii_last = first, last
        if not ascii_fold(first) and pool.romanized:
            ascii_first, ascii_last = pick(pool.romanized)
        company = pick(pool.companies)
        email = f"{_local_part(rng, ascii_first, ascii_last)}@{_domain(rng, company)}"
        while email.lower() in seen:
            local, _, domain = email.partition("@")
            email = f"{local}{rng.randrange(10, 999)}@{domain}"
        seen.add(email.lower())
        _, language, country, tz = LOCALES[locale]
        people.append({
            "email": email, "first_name": first, "last_name": last, "company": company,
            "phone": pick(pool.phones), "birthday": f"{1 + int(rand() * 12):02d}/{1 + int(rand() * 28):02d}",
            "address": pick(pool.addresses), "locale": locale, "language": language,
            "country_code": country, "timezone": tz,
        })
    return people


def vary_case(rng: random.Random, email: str) -> str:
    """The same address with different letter case (the hash, and so the person, stays the same)."""
    local, _, domain = email.partition("@")
    choice = rng.randrange(3)
    if choice == 0:
        return f"{local[:1].upper()}{local[1:]}@{domain}"
    if choice == 1:
        return f"{local}@{domain.upper()}"
    return email.upper()


def salesforce_people(people: list[dict[str, Any]], seed: int, share: float = 0.2) -> list[dict[str, Any]]:
    """About ``share`` of the people as existing Salesforce Contacts/Leads.

    Some carry a different email case than in Mailchimp, and a few exist as both a Contact
    and a Lead, so email matching in the sync has to be case-insensitive and pick a winner.
    """
    rng = random.Random(seed + 1)
    chosen = []
    for person in people:
        if rng.random() >= share:
            continue
        email = vary_case(rng, person["email"]) if rng.random() < 0.15 else person["email"]
        kind = "Contact" if rng.random() < 0.6 else "Lead"
        record = {"email": email, "first_name": person["first_name"], "last_name": person["last_name"],
                  "company": person["company"], "phone": person["phone"], "kind": kind}
        chosen.append(record)
        if rng.random() < 0.03:
            chosen.append({**record, "kind": "Lead" if kind == "Contact" else "Contact"})
    return chosen
