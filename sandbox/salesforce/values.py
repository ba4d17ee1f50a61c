"""Field values in and out: coerce API input to stored form, format stored values for JSON and CSV.

Stored forms (SQLite): text as TEXT, checkbox as 0/1, numbers as REAL/INTEGER, date as
``YYYY-MM-DD``, datetime as UTC ``YYYY-MM-DDTHH:MM:SS.fffZ`` (sorts lexically = chronologically).
A coercer raises :class:`FieldError` (a Salesforce row error) or :class:`TypeMismatch` (the value
cannot be read as the field's type; JSON and CSV callers word that differently).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.salesforce import ids

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.salesforce.schema import FieldDef, Schema

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
XSD = {"double": "double", "currency": "double", "percent": "double", "int": "int", "boolean": "boolean",
       "date": "date", "datetime": "dateTime"}


class FieldError(Exception):
    """A row-level Salesforce error: ``statusCode``, ``message``, ``fields``."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or []

    def as_dict(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


class TypeMismatch(Exception):
    def __init__(self, field: FieldDef, value: object) -> None:
        super().__init__(str(value))
        self.field, self.value = field, value


def parse_datetime(text: str) -> datetime | None:
    m = DATETIME_RE.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0),
                      int((frac or "0")[:6].ljust(6, "0")), tzinfo=UTC)
    except ValueError:
        return None
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return dt


def format_datetime(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_date(text: str) -> date | None:
    m = DATE_RE.match(text)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _too_long(f: FieldDef, v: str) -> FieldError:
    return FieldError("STRING_TOO_LONG", f"{f.label}: data value too large: {v} (max length={f.length})", [f.name])


def coercer(f: FieldDef, schema: Schema) -> Callable[[Any], Any]:
    """A function turning one non-null input value into the stored value for field ``f``."""
    t = f.type
    if t in ("string", "email", "url", "phone", "textarea", "picklist", "multipicklist"):
        allowed = {p.value for p in f.picklist} if f.restricted else None

        def text(v: Any) -> Any:
            if type(v) is not str:
                if isinstance(v, (dict, list)):
                    raise TypeMismatch(f, v)
                v = ("true" if v else "false") if isinstance(v, bool) else str(v)
            if not v:
                return None  # Salesforce stores "" as null
            if len(v) > f.length:
                raise _too_long(f, v)
            if t == "email" and not EMAIL_RE.match(v):
                raise FieldError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {v}", [f.name])
            if allowed is not None and any(part not in allowed for part in v.split(";")):
                raise FieldError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                 f"{f.label}: bad value for restricted picklist field: {v}", [f.name])
            return v

        return text
    if t in ("double", "currency", "percent", "int"):
        limit = 10 ** (f.precision - f.scale) if f.precision else None

        def number(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise TypeMismatch(f, v)
            try:
                n = float(v)
            except ValueError:
                raise TypeMismatch(f, v) from None
            if not math.isfinite(n):
                raise TypeMismatch(f, v)
            if t == "int":
                if n != int(n):
                    raise TypeMismatch(f, v)
                return int(n)
            n = round(n, f.scale)
            if limit is not None and abs(n) >= limit:
                raise FieldError("NUMBER_OUTSIDE_VALID_RANGE",
                                 f"{f.label}: value outside of valid range on numeric field: {v}", [f.name])
            return n

        return number
    if t == "boolean":
        def boolean(v: Any) -> Any:
            if isinstance(v, bool):
                return int(v)
            if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
                return int(v.lower() in ("true", "1"))
            raise TypeMismatch(f, v)

        return boolean
    if t == "date":
        def date_(v: Any) -> Any:
            d = parse_date(v) if isinstance(v, str) else None
            if d is None:
                dt = parse_datetime(v) if isinstance(v, str) else None
                if dt is None:
                    raise TypeMismatch(f, v)
                d = dt.date()
            return d.isoformat()

        return date_
    if t == "datetime":
        def datetime_(v: Any) -> Any:
            dt = parse_datetime(v) if isinstance(v, str) else None
            if dt is None:
                d = parse_date(v) if isinstance(v, str) else None
                if d is None:
                    raise TypeMismatch(f, v)
                dt = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return format_datetime(dt)

        return datetime_
    if t in ("reference", "id"):
        prefixes = {o.key_prefix for name in f.reference_to if (o := schema.get(name)) is not None}

        def reference(v: Any) -> Any:
            if not isinstance(v, str):
                raise TypeMismatch(f, v)
            if not v:
                return None
            try:
                full = ids.to18(v)
            except ValueError:
                raise FieldError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {v}", [f.name]) from None
            if prefixes and full[:3] not in prefixes:
                raise FieldError("FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {v}",
                                 [f.name])
            return full

        return reference
    raise ValueError(f"no coercer for type {t}")


def json_mismatch(err: TypeMismatch) -> FieldError:
    kind = XSD.get(err.field.type, "String")
    return FieldError("JSON_PARSER_ERROR",
                      f"Cannot deserialize instance of {kind} from VALUE_STRING value {err.value} "
                      "or request may be missing a required field", [err.field.name])


def csv_mismatch(err: TypeMismatch, column: int) -> FieldError:
    kind = XSD.get(err.field.type, "string")
    return FieldError("INVALID_FIELD", f"Failed to deserialize field at col {column}. Due to, '{err.value}' "
                      f"is not a valid value for the type xsd:{kind}", [err.field.name])


def to_json(f: FieldDef, v: Any) -> Any:
    """Stored value -> REST JSON value."""
    if v is None:
        return None
    t = f.type
    if t == "boolean":
        return bool(v)
    if t == "datetime":
        return v[:-1] + "+0000"
    if t in ("double", "currency", "percent"):
        return float(v)
    return v


def to_csv(f: FieldDef, v: Any) -> str:
    """Stored value -> Bulk API 2.0 CSV text."""
    if v is None:
        return ""
    t = f.type
    if t == "boolean":
        return "true" if v else "false"
    if t in ("double", "currency", "percent"):
        return str(int(v)) if f.scale == 0 and float(v).is_integer() else repr(float(v))
    return v if isinstance(v, str) else str(v)
