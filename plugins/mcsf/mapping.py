"""Mailchimp members -> Salesforce subscriber rows and mapped Lead/Contact values (pure).

Frames in, frames out; no I/O and no mutation of inputs. Every value bound for Salesforce is a
string in its *canonical* form (see :func:`canonical`) or ``None`` ("no value"), so that a
desired row and the row Salesforce already holds compare equal exactly when a write would change
nothing — that is what makes a re-run of any interval a no-op.

The members frame comes from :func:`mcsf.extract.flatten_member`: columns ``list_id``,
``email_hash``, ``email_address``, ``status``, ``member_rating``, ``last_changed``,
``timestamp_opt``, ``language``, ``vip``, ``tags``, ``interests`` and one ``merge.<TAG>`` column
per merge value (address parts as ``merge.ADDRESS.city`` and so on).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mcsf.config import AudienceMapping

SUBSCRIBER = "MC_Subscriber__c"
SUBSCRIBER_KEY = "MC_Subscriber_Key__c"
AUDIENCE_REF = "Audience__r.MC_Audience_Id__c"
#: Columns of a subscriber row that mcsf owns and compares (Lead__c/Contact__c are added by leads).
SUBSCRIBER_FIELDS = {
    "Name": "string",
    "Email__c": "email",
    "Email_Hash__c": "string",
    "Status__c": "picklist",
    "First_Name__c": "string",
    "Last_Name__c": "string",
    "Member_Rating__c": "double",
    "Last_Changed__c": "datetime",
    "Opted_In_At__c": "datetime",
    "Language__c": "string",
    "VIP__c": "boolean",
    "Tags__c": "textarea",
    "Interests__c": "textarea",
}
SUBSCRIBER_LENGTHS = {"Name": 80, "First_Name__c": 80, "Last_Name__c": 80, "Language__c": 10}
NUMERIC = {"double", "int", "currency", "percent"}
# Passed to pandas as its pattern text, not compiled: text then stays in pyarrow (RE2), not a Python loop.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalize_email(value: Any) -> str:
    """The matching form of an email: trimmed and lower-cased (Salesforce compares without case)."""
    return str(value or "").strip().lower()


def isin(column: pd.Series, wanted: Iterable[Any]) -> pd.Series:
    """``column.isin(wanted)`` for text keys and emails, as one hashed lookup in pyarrow.

    pandas' arrow-backed strings first turn every wanted value into a pyarrow scalar in Python
    (about 7 s for a million); this builds the value set in one call (under 1 s). Missing values
    match nothing. Columns that are not text fall back to pandas.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = wanted if isinstance(wanted, (pd.Series, pd.Index, np.ndarray)) else list(wanted)
    if column.empty or not len(values):
        return pd.Series(False, index=column.index, dtype=bool)
    left = pa.array(column, from_pandas=True)
    if not (pa.types.is_string(left.type) or pa.types.is_large_string(left.type)):
        return column.isin(values)
    try:
        value_set = pa.array(values, from_pandas=True).cast(left.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return column.isin(values)
    found = pc.is_in(left, value_set=value_set, skip_nulls=True).fill_null(False)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=column.index, dtype=bool)


def subscriber_key(list_id: str, email_hash: str) -> str:
    return f"{list_id}:{email_hash}"


def clean_text(value: Any) -> str | None:
    """Trim and drop control characters Salesforce cannot store (NUL and friends); blank -> None."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = _CONTROL.sub("", str(value)).strip()
    return text or None


def canonical(value: Any, sf_type: str) -> str | None:
    """One string form per Salesforce type, for both desired values and values read back.

    Raises ``ValueError`` naming the expected format when ``value`` cannot be that type.

    :param value: a Mailchimp value, or a value read from Salesforce (REST JSON or Bulk CSV)
    :param sf_type: the describe ``type`` of the target field
    """
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    if sf_type == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value).strip().lower()
        if text in {"true", "1", "yes"}:
            return "true"
        if text in {"false", "0", "no", ""}:
            return "false"
        raise ValueError(f"{value!r} is not true or false")
    if sf_type in NUMERIC:
        text = str(value).strip().replace(",", "") if not isinstance(value, int | float) else repr(value)
        if text == "":
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        normal = number.normalize()
        return format(normal, "f") if normal != normal.to_integral() else str(int(normal))
    if sf_type == "datetime":
        return _canonical_datetime(value)
    if sf_type == "date":
        return _canonical_date(value)
    return clean_text(value)


def _canonical_datetime(value: Any) -> str | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        text = str(value).strip()
        if not text:
            return None
        if re.fullmatch(r".*[+-]\d{4}", text):  # Salesforce REST: 2026-11-20T09:12:00.000+0000
            text = f"{text[:-2]}:{text[-2:]}"
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%d.%m.%Y")


def _canonical_date(value: Any) -> str | None:
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    text = str(value).strip()
    if not text:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).strftime("%Y-%m-%d")
        except ValueError:
            continue
    if re.fullmatch(r"\d{1,2}/\d{1,2}", text):
        raise ValueError(f"{value!r} is a birthday without a year and cannot fill a date field")
    raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD)")


def canonical_series(values: pd.Series, sf_type: str, label: str) -> tuple[pd.Series, pd.Series]:
    """:func:`canonical` over a column: (values, per-row error text or None), same results per value.

    Performance (million-row extracts): each *distinct* value is canonicalised once (names, phones,
    ratings, flags repeat a lot); text is cleaned in vectorised passes; datetimes in the form the
    APIs send are parsed and formatted in vectorised passes; the rest goes value by value.

    :param label: how the reject reason names the source, e.g. ``"merge field PHONE -> Lead.Phone"``
    """
    codes, uniques = _distinct(values)

    def per_row(per_value: np.ndarray) -> pd.Series:  # code -1 (no value) picks the appended None
        return pd.Series(np.append(per_value, None)[codes], index=values.index, dtype=object)

    no_errors = pd.Series(np.full(len(values), None, dtype=object), index=values.index, dtype=object)
    if sf_type not in NUMERIC | {"boolean", "datetime", "date"}:
        text = _cleaned(uniques.astype("string"))
        return per_row(text.where(text.str.len() > 0, None).to_numpy(dtype=object)), no_errors
    out = np.full(len(uniques), None, dtype=object)
    errors = np.full(len(uniques), None, dtype=object)
    rest = np.ones(len(uniques), dtype=bool)
    if sf_type == "datetime" and len(uniques):
        rest = ~_fast_datetimes(uniques, out)
    positions = np.flatnonzero(rest)
    failed = False
    for pos, value in zip(positions.tolist(), uniques.iloc[positions].to_numpy(dtype=object).tolist(), strict=True):
        try:
            out[pos] = canonical(value, sf_type)
        except ValueError as err:
            errors[pos], failed = f"{label}: {err}", True
    return per_row(out), (per_row(errors) if failed else no_errors)


def _distinct(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """``(codes, distinct values)``; every value when they mostly differ or mix types (1 == 1.0 == True)."""
    sample = pd.unique(values.iloc[:10_000].to_numpy(dtype=object))
    if len(sample) <= 5_000 and pd.api.types.infer_dtype(sample, skipna=True) in _DEDUPE_SAFE:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        if pd.api.types.infer_dtype(uniques, skipna=True) in _DEDUPE_SAFE:
            return np.asarray(codes), pd.Series(uniques)
    every = values.reset_index(drop=True)
    return np.where(every.isna().to_numpy(), -1, np.arange(len(every))), every


#: Value kinds whose distinct values canonicalise like every copy of them (no 1 == 1.0 == True mix).
_DEDUPE_SAFE = frozenset({"string", "integer", "floating", "boolean", "empty", "decimal", "date", "datetime"})
#: ISO 8601 as the APIs send it (1970 on, whole offsets): these parse the same in pandas and Python.
_ISO_DATETIME = r"(?:19[7-9]\d|2\d{3})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})"


def _fast_datetimes(values: pd.Series, out: np.ndarray) -> np.ndarray:
    """Canonicalise the common datetime strings into ``out`` at once; returns which were done."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = values.astype("string")
    plain = text.str.fullmatch(_ISO_DATETIME).fillna(False).to_numpy(dtype=bool, copy=True)
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) != "string":
        plain &= values.map(type).eq(str).to_numpy()  # only str values take this path
    if not plain.any():
        return plain
    parsed = pd.to_datetime(text[plain], format="ISO8601", utc=True, errors="coerce")  # takes +0000 too
    ok = parsed.notna().to_numpy()
    naive = pa.array(parsed[ok].to_numpy(dtype="datetime64[ms]"))  # UTC wall time, cut to milliseconds
    stamps = pc.binary_join_element_wise(pc.replace_substring(pc.cast(naive, pa.string()), " ", "T",
                                                              max_replacements=1), "Z", "")
    rows = np.flatnonzero(plain)[ok]
    out[rows] = stamps.to_numpy(zero_copy_only=False)
    done = np.zeros(len(values), dtype=bool)
    done[rows] = True
    return done


def to_subscribers(members: pd.DataFrame, mapping: AudienceMapping) -> pd.DataFrame:
    """Subscriber rows for ``MC_Subscriber__c`` keyed by audience + subscriber hash.

    Extra columns: ``_email_norm`` (the matching form) and ``_reasons`` (problems found while
    mapping; empty string when none). Names are cut to the object's lengths (the subscriber is
    mcsf's own record; the full value still reaches mapped Lead/Contact fields or is rejected there).
    """
    frame = pd.DataFrame(index=members.index)
    if members.empty:
        return pd.DataFrame(columns=[SUBSCRIBER_KEY, AUDIENCE_REF, *SUBSCRIBER_FIELDS, "_email_norm", "_reasons"])
    email = members["email_address"].astype("string").str.strip()
    address = email.astype(object).where(email.notna() & (email != ""), None)
    frame[SUBSCRIBER_KEY] = members["list_id"].astype("string") + ":" + members["email_hash"].astype("string")
    frame[AUDIENCE_REF] = mapping.audience_id
    # Name is the address cut to 80 characters: the very same values unless an address is longer.
    frame["Name"] = address if not email.str.len().gt(80).any() else _text_per_row(email, lambda t: t.str.slice(0, 80))
    frame["Email__c"] = address
    frame["Email_Hash__c"] = members["email_hash"].astype("string")
    frame["Status__c"] = members["status"].astype("string")
    none = pd.Series(None, index=members.index, dtype=object)
    frame["First_Name__c"] = _text_per_row(members.get("merge.FNAME", none), lambda t: _cleaned(t).str.slice(0, 80))
    frame["Last_Name__c"] = _text_per_row(members.get("merge.LNAME", none), lambda t: _cleaned(t).str.slice(0, 80))
    reasons = pd.Series("", index=members.index, dtype=object)
    for column, source in (("Member_Rating__c", "member_rating"), ("Last_Changed__c", "last_changed"),
                           ("Opted_In_At__c", "timestamp_opt"), ("VIP__c", "vip")):
        values, errors = canonical_series(members.get(source, none), SUBSCRIBER_FIELDS[column], source)
        frame[column] = values
        reasons = _join_reasons(reasons, errors)
    frame["Language__c"] = _text_per_row(members.get("language", none), lambda t: t.str.slice(0, 10))
    frame["Tags__c"] = _text_per_row(members.get("tags", none), lambda t: t)
    interests = members.get("interests", none).astype("string").fillna("")
    # Once per distinct combination of interests (a handful per audience), not once per member.
    codes, combos = pd.factorize(interests)
    keyed = [";".join(f"{mapping.audience_id}:{i}" for i in ids.split(";") if i) or None for ids in combos]
    frame["Interests__c"] = pd.Series(np.asarray([*keyed, None], dtype=object)[codes], index=members.index,
                                      dtype=object)
    frame["_email_norm"] = email.str.lower()
    frame["_reasons"] = reasons
    return frame


def person_values(
    members: pd.DataFrame,
    mapping: AudienceMapping,
    sf_fields: dict[str, dict[str, dict[str, Any]]],
) -> pd.DataFrame:
    """Mapped Lead and Contact values: columns ``Lead.<Field>`` / ``Contact.<Field>`` and ``_reasons``.

    Only fields whose direction carries data into Salesforce are produced. Values are canonical
    strings for the target field's type; a value that cannot be converted is ``None`` and the row
    gets a reason naming the merge tag, the target field and the expected format.

    :param sf_fields: ``{"Lead": {field_name: describe}, "Contact": {...}}``
    """
    out = pd.DataFrame(index=members.index)
    reasons = pd.Series("", index=members.index, dtype=object)
    converted: dict[tuple[str, str], pd.Series] = {}  # a tag feeding a Lead and a Contact field of one type: once
    for object_name, fields in (("Lead", mapping.lead_fields()), ("Contact", mapping.contact_fields())):
        for tag, field_name in fields.items():
            sf_type = sf_fields.get(object_name, {}).get(field_name, {"type": "string"}).get("type", "string")
            if (tag, sf_type) in converted:  # only tags without errors are kept: the reasons name the field
                out[f"{object_name}.{field_name}"] = converted[tag, sf_type]
                continue
            source = members.get(f"merge.{tag}", pd.Series(None, index=members.index, dtype=object))
            values, errors = canonical_series(source, sf_type, f"merge field {tag} -> {object_name}.{field_name}")
            out[f"{object_name}.{field_name}"] = values
            if errors.isna().all():
                converted[tag, sf_type] = values
            reasons = _join_reasons(reasons, errors)
    out["_reasons"] = reasons
    return out


def mapped_rows(subscribers: pd.DataFrame, people: pd.DataFrame) -> pd.DataFrame:
    """What the map task stages: :func:`to_subscribers`' columns, then :func:`person_values`', with
    both ``_reasons`` joined by '; ' (empty when neither found one)."""
    mapped = pd.concat([subscribers, people.drop(columns="_reasons")], axis=1)
    theirs = people["_reasons"]
    mapped["_reasons"] = _join_reasons(subscribers["_reasons"].fillna(""), theirs.where(theirs.fillna("") != "", None))
    return mapped


def _cleaned(text: pd.Series) -> pd.Series:
    """``string`` text without the control characters Salesforce cannot store, trimmed (see :func:`clean_text`)."""
    return text.str.replace(_CONTROL.pattern, "", regex=True).str.strip()


def _text_per_row(values: pd.Series, edit: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``edit`` (``string`` text in, out) done once per distinct value; per row as object, blank -> None."""
    codes, uniques = _distinct(values)
    text = edit(uniques.astype("string"))
    per_value = text.astype(object).where(text.notna() & (text != ""), None).to_numpy(dtype=object)
    return pd.Series(np.append(per_value, None)[codes], index=values.index, dtype=object)


def _join_reasons(reasons: pd.Series, errors: pd.Series) -> pd.Series:
    """Append non-empty ``errors`` to ``reasons`` with '; ' between (both object Series)."""
    has = errors.notna()
    if not has.any():
        return reasons
    joined = reasons.copy()
    joined[has] = [f"{r}; {e}" if r else e for r, e in zip(reasons[has], errors[has], strict=True)]
    return joined


def diff(desired: pd.DataFrame, existing: pd.DataFrame, key: str, types: dict[str, str]) -> pd.DataFrame:
    """Rows of ``desired`` that are new or differ from ``existing`` on any column in ``types``.

    ``existing`` holds the same columns as read back from Salesforce (any representation);
    both sides are compared in canonical form. A ``None`` in ``desired`` means "no value" and is
    compared like any other value. Adds ``_is_new`` (bool).

    :param key: the external-id column both frames carry
    :param types: column -> Salesforce type, for canonical comparison
    """
    if desired.empty:
        return desired.assign(_is_new=pd.Series(dtype=bool))
    if existing.empty:
        return desired.assign(_is_new=True)
    current = existing.drop_duplicates(key, keep="last").set_index(key)
    aligned = current.reindex(desired[key])
    changed = pd.Series(False, index=desired.index)
    for column, sf_type in types.items():
        if column not in desired.columns:
            continue
        have_raw = aligned[column] if column in aligned.columns else pd.Series(None, index=aligned.index)
        want = _text(desired[column])
        have = _text(pd.Series(have_raw.to_numpy(), index=desired.index))
        # Cheap first: equal text is equal. Only the rest pays for canonical forms (a REST read
        # says 3.0 and +0000 where the desired row says 3 and Z).
        differs = want != have
        if differs.any():
            w = want[differs].map(lambda v, t=sf_type: loose_canonical(v, t)).fillna("\0")
            h = have[differs].map(lambda v, t=sf_type: loose_canonical(v, t)).fillna("\0")
            changed[differs[differs].index] |= (w != h).to_numpy()
    is_new = ~desired[key].isin(current.index)
    result = desired[changed | is_new].copy()
    result["_is_new"] = is_new[changed | is_new]
    return result


def _text(values: pd.Series) -> pd.Series:
    """Values as text with every kind of missing as one marker, for a first equality pass."""
    return values.astype(object).where(values.notna(), "\0").map(str)


def loose_canonical_series(values: pd.Series, sf_type: str) -> pd.Series:
    """:func:`loose_canonical` over a column: values that are not of the type stay as their text."""
    out, errors = canonical_series(values, sf_type, "")
    bad = np.flatnonzero(errors.notna().to_numpy())
    if len(bad):
        out.iloc[bad] = [str(v) for v in values.to_numpy(dtype=object)[bad]]
    return out


def loose_canonical(value: Any, sf_type: str) -> str | None:
    try:
        return canonical(value, sf_type)
    except ValueError:
        return str(value)
