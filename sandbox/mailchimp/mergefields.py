"""Merge fields: their CRUD endpoints and the validation of member values against them.

Values are checked the way Mailchimp's forms check them (a number field takes numbers, a
dropdown only its choices, an address needs addr1/city/state/zip), and a failure is the
400 "Invalid Resource" / "Your merge fields were invalid." document with one
``{field, message}`` per bad tag. Unknown tags in a member body are ignored, as Mailchimp does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import orjson

from sandbox.mailchimp.errors import VALIDATION_DETAIL, ApiError, invalid, not_found
from sandbox.mailchimp.links import collection_links, item_links
from sandbox.mailchimp.lookups import require_list
from sandbox.mailchimp.params import PAGING, PROJECTION
from sandbox.mailchimp.routing import Api, Call, body_field

if TYPE_CHECKING:
    import sqlite3

TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip")
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "text": {"size": 25}, "address": {"default_country": 164}, "phone": {"phone_format": "none"},
    "date": {"date_format": "MM/DD/YYYY"}, "birthday": {"date_format": "MM/DD"},
    "radio": {"choices": []}, "dropdown": {"choices": []},
}
DEFAULT_FIELDS = (("FNAME", "First Name", "text"), ("LNAME", "Last Name", "text"),
                  ("ADDRESS", "Address", "address"), ("PHONE", "Phone Number", "phone"))
INVALID_MERGE = "Your merge fields were invalid."
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_PHONE = re.compile(r"^[0-9+().\-\s x/#*]{3,}$")
_US_PHONE = re.compile(r"^\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}$")
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")


@dataclass(frozen=True)
class MergeField:
    merge_id: int
    tag: str
    name: str
    type: str
    required: bool
    default_value: str
    public: bool
    display_order: int
    options: dict[str, Any]
    help_text: str


def load_fields(conn: sqlite3.Connection, list_id: str) -> list[MergeField]:
    rows = conn.execute("SELECT * FROM merge_fields WHERE list_id=? ORDER BY display_order, merge_id", (list_id,))
    return [MergeField(r["merge_id"], r["tag"], r["name"], r["type"], bool(r["required"]), r["default_value"],
                       bool(r["public"]), r["display_order"], orjson.loads(r["options"]), r["help_text"])
            for r in rows]


def insert_field(conn: sqlite3.Connection, list_id: str, tag: str, name: str, type_: str, *,
                 required: bool = False, default_value: str = "", public: bool = True,
                 display_order: int | None = None, options: dict[str, Any] | None = None,
                 help_text: str = "") -> int:
    """Insert one merge field; ids and display order continue from the list's last field."""
    merge_id, order = conn.execute("SELECT COALESCE(MAX(merge_id), 0) + 1, COALESCE(MAX(display_order), 1) + 1 "
                                   "FROM merge_fields WHERE list_id=?", (list_id,)).fetchone()
    opts = {**DEFAULT_OPTIONS.get(type_, {}), **(options or {})}
    conn.execute("INSERT INTO merge_fields VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                 (list_id, merge_id, tag, name, type_, int(required), default_value, int(public),
                  display_order if display_order is not None else order, orjson.dumps(opts).decode(), help_text))
    return merge_id


def add_default_fields(conn: sqlite3.Connection, list_id: str) -> None:
    """FNAME, LNAME, ADDRESS, PHONE: what every new audience starts with."""
    for tag, name, type_ in DEFAULT_FIELDS:
        insert_field(conn, list_id, tag, name, type_)


def make_tag(name: str, taken: set[str], next_id: int) -> str:
    """A tag from the field name: upper-case letters and digits, at most 10, unique in the list."""
    base = re.sub(r"[^A-Z0-9]", "", name.upper())[:10] or f"MMERGE{next_id}"
    tag, n = base, 1
    while tag in taken:
        suffix = str(n)
        tag, n = base[: 10 - len(suffix)] + suffix, n + 1
    return tag


def _check(field: MergeField, value: Any) -> tuple[Any, str | None]:
    """(normalized value, error message or None) for one non-empty value."""
    kind = field.type
    if kind == "address":
        if isinstance(value, str):
            parts = [p.strip() for p in re.split(r"\s{2,}", value.strip())]
            if len(parts) < 4:
                return value, "Please enter a complete address"
            value = {"addr1": parts[0], "addr2": "", "city": parts[1], "state": parts[2], "zip": parts[3],
                     "country": parts[4] if len(parts) > 4 else "US"}
        required = ("addr1", "city", "state", "zip")
        if not isinstance(value, dict) or not all(str(value.get(k, "")).strip() for k in required):
            return value, "Please enter a complete address"
        return {"addr1": str(value.get("addr1", "")), "addr2": str(value.get("addr2", "")),
                "city": str(value.get("city", "")), "state": str(value.get("state", "")),
                "zip": str(value.get("zip", "")), "country": str(value.get("country", "US"))}, None
    if isinstance(value, (dict, list)):
        return value, "Please enter a value"
    if kind == "number":
        if isinstance(value, bool):
            return value, "Please enter a number"
        if isinstance(value, (int, float)):
            return value, None
        try:
            number = float(str(value).strip())
        except ValueError:
            return value, "Please enter a number"
        return (int(number) if number.is_integer() else number), None
    text = str(value)
    stripped = text.strip()
    if kind == "text":
        return text, None
    if kind == "phone":
        fmt = field.options.get("phone_format", "none")
        ok = _US_PHONE.match(stripped) if fmt == "US" else _PHONE.match(stripped)
        return text, None if ok else "Please enter a valid phone number"
    if kind in ("url", "imageurl"):
        return text, None if _URL.match(stripped) else "Please enter a valid URL"
    if kind in ("radio", "dropdown"):
        return text, None if text in field.options.get("choices", []) else "Please select a valid option"
    if kind == "zip":
        return text, None if _ZIP.match(stripped) else "Please enter a valid zip code"
    if kind == "date":
        return _date(stripped, field.options.get("date_format", "MM/DD/YYYY"), full=True)
    if kind == "birthday":
        return _date(stripped, field.options.get("date_format", "MM/DD"), full=False)
    return text, None


def _date(text: str, fmt: str, full: bool) -> tuple[str, str | None]:
    """Dates are stored and returned as YYYY-MM-DD; birthdays as MM/DD (as Mailchimp returns them)."""
    try:
        if full and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text).isoformat(), None
        parts = [int(p) for p in re.split(r"[/\-.]", text)]
        day_first = fmt.upper().startswith("DD")
        if full:
            if len(parts) != 3:
                raise ValueError
            m, d = (parts[1], parts[0]) if day_first else (parts[0], parts[1])
            return date(parts[2], m, d).isoformat(), None
        if len(parts) < 2:
            raise ValueError
        m, d = (parts[1], parts[0]) if day_first else (parts[0], parts[1])
        date(2000, m, d)  # leap year: 02/29 is a valid birthday
        return f"{m:02d}/{d:02d}", None
    except ValueError:
        return text, "Please enter a valid date" if full else "Please enter a valid birthday"


def merge_values(fields: list[MergeField], incoming: dict[str, Any] | None, current: dict[str, Any] | None,
                 skip_validation: bool) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Combine stored values with the request's, validating what the request sets.

    :returns: (the member's full value map by tag, field errors)
    """
    values: dict[str, Any] = {f.tag: (current or {}).get(f.tag, "") for f in fields}
    errors: list[dict[str, str]] = []
    by_tag = {f.tag: f for f in fields}
    for tag, value in (incoming or {}).items():
        field = by_tag.get(tag.upper())
        if field is None:
            continue
        if value is None or value == "":
            values[field.tag] = ""
            continue
        normalized, message = _check(field, value)
        if message:
            errors.append({"field": field.tag, "message": message})
        else:
            values[field.tag] = normalized
    if not skip_validation:
        for field in fields:
            if field.required and values[field.tag] in ("", None) and not any(e["field"] == field.tag for e in errors):
                if current is None and field.default_value:
                    values[field.tag] = field.default_value
                else:
                    errors.append({"field": field.tag, "message": "Please enter a value"})
    return values, errors


def raise_merge_errors(errors: list[dict[str, str]]) -> None:
    if errors:
        raise invalid(INVALID_MERGE, errors)


api = Api("/3.0")
FIELD_WRITE_KEYS = ("tag", "name", "required", "default_value", "public", "display_order", "options", "help_text")


def render_field(f: MergeField, list_id: str, base: str) -> dict[str, Any]:
    href = f"{base}/lists/{list_id}/merge-fields/{f.merge_id}"
    return {"merge_id": f.merge_id, "tag": f.tag, "name": f.name, "type": f.type, "required": f.required,
            "default_value": f.default_value, "public": f.public, "display_order": f.display_order,
            "options": f.options, "help_text": f.help_text, "list_id": list_id,
            "_links": item_links(href, f"{base}/lists/{list_id}/merge-fields", "Lists/MergeFields")}


def _find(call: Call) -> MergeField:
    conn = call.store.conn()
    require_list(conn, call.path["list_id"])
    try:
        merge_id = int(call.path["merge_id"])
    except ValueError:
        raise not_found() from None
    for f in load_fields(conn, call.path["list_id"]):
        if f.merge_id == merge_id:
            return f
    raise not_found()


@api.route("GET", "/lists/{list_id}/merge-fields", params=(*PAGING, "type", "required"))
def list_fields(call: Call) -> dict[str, Any]:
    list_id = call.path["list_id"]
    conn = call.store.conn()
    require_list(conn, list_id)
    count, offset = call.query.page()
    kind = call.query.enum("type", TYPES)
    fields = [f for f in load_fields(conn, list_id) if kind is None or f.type == kind]
    if "required" in call.query.raw:
        required = call.query.bool("required")
        fields = [f for f in fields if f.required == required]
    href = f"{call.base}/lists/{list_id}/merge-fields"
    return {"merge_fields": [render_field(f, list_id, call.base) for f in fields[offset:offset + count]],
            "list_id": list_id, "total_items": len(fields),
            "_links": collection_links(href, f"{call.base}/lists/{list_id}", "Lists/MergeFields")}


def _validated_options(kind: str, options: Any) -> dict[str, Any]:
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise invalid(VALIDATION_DETAIL, [{"field": "options", "message": "Schema describes object"}])
    if kind in ("radio", "dropdown") and not options.get("choices"):
        raise invalid(VALIDATION_DETAIL, [{"field": "options.choices",
                                           "message": "Dropdown and radio fields need at least one choice."}])
    return options


@api.route("POST", "/lists/{list_id}/merge-fields", body=True)
def create_field(call: Call) -> dict[str, Any]:
    list_id = call.path["list_id"]
    name = body_field(call, "name", str, required=True)
    kind = body_field(call, "type", str, required=True)
    if kind not in TYPES:
        raise invalid(VALIDATION_DETAIL, [{"field": "type", "message": f"Value must be one of: {', '.join(TYPES)}"}])
    options = _validated_options(kind, call.body.get("options"))
    with call.store.write() as conn:
        require_list(conn, list_id)
        existing = load_fields(conn, list_id)
        taken = {f.tag for f in existing} | {"EMAIL"}
        next_id = max((f.merge_id for f in existing), default=0) + 1
        tag = body_field(call, "tag", str)
        if tag:
            tag = tag.strip().upper()
            if tag in taken:
                raise ApiError(400, f'A Merge Field with the tag "{tag}" already exists for this list.',
                               title="Invalid Resource")
            if not re.fullmatch(r"[A-Z0-9_]{1,10}", tag):
                raise invalid(VALIDATION_DETAIL, [{"field": "tag", "message":
                                                   "Tags are up to 10 letters, digits or underscores."}])
        else:
            tag = make_tag(name, taken, next_id)
        merge_id = insert_field(
            conn, list_id, tag, name, kind, required=bool(body_field(call, "required", bool, default=False)),
            default_value=str(call.body.get("default_value") or ""),
            public=bool(body_field(call, "public", bool, default=True)),
            display_order=body_field(call, "display_order", int), options=options,
            help_text=str(call.body.get("help_text") or ""))
    call.path["merge_id"] = str(merge_id)
    return render_field(_find(call), list_id, call.base)


@api.route("GET", "/lists/{list_id}/merge-fields/{merge_id}", params=PROJECTION)
def get_field(call: Call) -> dict[str, Any]:
    return render_field(_find(call), call.path["list_id"], call.base)


@api.route("PATCH", "/lists/{list_id}/merge-fields/{merge_id}", body=True)
def update_field(call: Call) -> dict[str, Any]:
    field = _find(call)
    body_field(call, "name", str, required=True)
    changes: dict[str, Any] = {}
    for key in FIELD_WRITE_KEYS:
        if key in call.body:
            changes[key] = call.body[key]
    if "options" in changes:
        changes["options"] = orjson.dumps({**field.options, **_validated_options(field.type, changes["options"])}
                                          ).decode()
    for key in ("required", "public"):
        if key in changes:
            changes[key] = int(bool(changes[key]))
    if "tag" in changes:
        changes["tag"] = str(changes["tag"]).strip().upper()
    with call.store.write() as conn:
        for key, value in changes.items():
            conn.execute(f"UPDATE merge_fields SET {key}=? WHERE list_id=? AND merge_id=?",
                         (value, call.path["list_id"], field.merge_id))
    return render_field(_find(call), call.path["list_id"], call.base)


@api.route("DELETE", "/lists/{list_id}/merge-fields/{merge_id}")
def delete_field(call: Call) -> None:
    field = _find(call)
    with call.store.write() as conn:
        conn.execute("DELETE FROM merge_fields WHERE list_id=? AND merge_id=?", (call.path["list_id"], field.merge_id))
