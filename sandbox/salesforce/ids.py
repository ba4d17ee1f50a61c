"""Salesforce record ids: 15-char case-sensitive form, 18-char case-safe form, key prefixes.

An id is ``keyPrefix (3) + pod (2) + counter (10, base 62)``; the 18-char form appends three
characters that encode which of the first 15 are upper case, so ids survive case-insensitive
tools. The counter is the row's SQLite rowid, so ``Id -> row`` needs no extra lookup table.
"""

from __future__ import annotations

import re
import string

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_CHECKSUM_CHARS = string.ascii_uppercase + "012345"
POD = "8d"  # pretend instance/pod characters, fixed so ids are deterministic
ORG_ID_15 = "00D8d00000Mcsf1"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def checksum(id15: str) -> str:
    """The three case-safe suffix characters for a 15-char id."""
    suffix = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix.append(_CHECKSUM_CHARS[bits])
    return "".join(suffix)


def to18(value: str) -> str:
    """Normalise a 15- or 18-char id to 18 chars; raise ValueError when it is not an id."""
    if len(value) == 18:
        value = _restore_case(value)  # the 18-char form is case-insensitive: its suffix says the case
    if not _ID_RE.match(value):
        raise ValueError(value)
    id15 = value[:15]
    full = id15 + checksum(id15)
    if len(value) == 18 and value[15:] != full[15:]:
        raise ValueError(value)
    return full


def _restore_case(value: str) -> str:
    suffix = value[15:].upper()
    if any(ch not in _CHECKSUM_CHARS for ch in suffix):
        return value
    chars = list(value[:15])
    for chunk, ch in enumerate(suffix):
        bits = _CHECKSUM_CHARS.index(ch)
        for i in range(5):
            pos = chunk * 5 + i
            chars[pos] = chars[pos].upper() if bits >> i & 1 else chars[pos].lower()
    return "".join(chars) + suffix


def is_id(value: str) -> bool:
    try:
        to18(value)
    except ValueError:
        return False
    return True


_PAIRS = [a + b for a in BASE62 for b in BASE62]
_UPPER_BITS = str.maketrans({c: "1" if c.isupper() else "0" for c in BASE62})


def encode(prefix: str, counter: int) -> str:
    """The 18-char id of row ``counter`` of the object with ``prefix`` (hot in bulk inserts)."""
    n = counter
    n, e = divmod(n, 3844)
    n, d = divmod(n, 3844)
    n, c = divmod(n, 3844)
    a, b = divmod(n, 3844)
    id15 = prefix + POD + _PAIRS[a] + _PAIRS[b] + _PAIRS[c] + _PAIRS[d] + _PAIRS[e]
    bits = id15.translate(_UPPER_BITS)
    return (id15 + _CHECKSUM_CHARS[int(bits[4::-1], 2)] + _CHECKSUM_CHARS[int(bits[9:4:-1], 2)]
            + _CHECKSUM_CHARS[int(bits[14:9:-1], 2)])


_PAIR_UPPER = [int(p[0].isupper()) | int(p[1].isupper()) << 1 for p in _PAIRS]


def encode_range(prefix: str, start: int, count: int) -> list[str]:
    """``[encode(prefix, n) for n in range(start, start + count)]``, fast: a bulk insert's ids.

    Within a run of 3844 counters only the last two characters change, so the first 13 characters
    and the first two checksum characters are shared; the third checksum character depends on
    characters 10-14, of which only 13 and 14 vary.
    """
    out: list[str] = []
    n, end = start, start + count
    while n < end:
        low = n % 3844
        stop = min(end, n - low + 3844)
        first = encode(prefix, n)
        head, sums = first[:13], first[15:17]
        upper = sum(1 << j for j in range(3) if first[10 + j].isupper())
        out += [head + _PAIRS[e] + sums + _CHECKSUM_CHARS[upper | _PAIR_UPPER[e] << 3]
                for e in range(low, low + stop - n)]
        n = stop
    return out


def decode(value: str) -> tuple[str, int]:
    """``(keyPrefix, counter)`` of a 15/18-char id; ValueError when malformed."""
    id15 = to18(value)[:15]
    n = 0
    for ch in id15[5:]:
        n = n * 62 + BASE62.index(ch)
    return id15[:3], n


def org_id() -> str:
    return ORG_ID_15 + checksum(ORG_ID_15)


def custom_prefix(index: int) -> str:
    """Key prefix of the ``index``-th custom object: a0A, a0B, ..., a0z, a10, ..."""
    n = 10 + index  # skip the digits so the first is "a0A" like a fresh org
    return "a" + BASE62[n // 62] + BASE62[n % 62]
