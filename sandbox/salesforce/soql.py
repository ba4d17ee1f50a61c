"""SOQL tokenizer and parser: query text -> a small AST (no schema knowledge here).

Covers SELECT fields / parent paths / COUNT() / COUNT(field), FROM, WHERE with comparison, IN,
NOT IN (literal lists or a semi-join sub-select), LIKE, AND/OR/NOT and parentheses, null,
booleans, numbers, date and datetime literals and relative date literals (TODAY, LAST_N_DAYS:n...),
ORDER BY with ASC/DESC and NULLS FIRST/LAST, LIMIT and OFFSET. String literals use
Salesforce's escapes; errors carry the position so messages can point at it as Salesforce does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
            "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "INCLUDES", "EXCLUDES",
            "GROUP", "HAVING"}
DATE_KEYWORDS = {"TODAY", "YESTERDAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK", "LAST_MONTH",
                 "THIS_MONTH", "NEXT_MONTH", "LAST_90_DAYS", "NEXT_90_DAYS", "THIS_YEAR", "LAST_YEAR",
                 "NEXT_YEAR"}
DATE_N_KEYWORDS = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO", "LAST_N_WEEKS", "NEXT_N_WEEKS",
                   "LAST_N_MONTHS", "NEXT_N_MONTHS", "LAST_N_YEARS", "NEXT_N_YEARS"}
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
      | (?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
      | (?P<number>[+-]?\d+(?:\.\d+)?(?![\w.]))
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<op>!=|<>|<=|>=|=|<|>|\(|\)|,|:)
      | (?P<string>')""",
    re.VERBOSE,
)


MAX_OFFSET = 2000  # Salesforce's: a larger OFFSET is NUMBER_OUTSIDE_VALID_RANGE
INT32_MAX = 2**31 - 1


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` as Salesforce names it (MALFORMED_QUERY, INVALID_FIELD, ...)."""

    def __init__(self, code: str, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.pos = code, message, pos

    def render(self, text: str) -> str:
        """Salesforce's message form: the query line, a caret, ``ERROR at Row:r:Column:c``, the text."""
        if self.pos is None:
            return self.message
        row = text.count("\n", 0, self.pos) + 1
        start = text.rfind("\n", 0, self.pos) + 1
        end = text.find("\n", self.pos)
        line = text[start : end if end != -1 else len(text)]
        col = self.pos - start + 1
        return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{self.message}"


@dataclass(frozen=True)
class Token:
    kind: str  # ident, keyword, number, string, date, datetime, op, eof
    value: Any
    pos: int
    like: str | None = None  # string literals: the SQL LIKE form (escape char backslash)
    text: str = ""


@dataclass
class FieldRef:
    path: list[str]
    pos: int


@dataclass
class Count:
    field: FieldRef | None
    alias: str | None
    pos: int


@dataclass
class Literal:
    kind: str  # string, number, bool, null, date, datetime, dateliteral
    value: Any
    pos: int
    like: str | None = None


@dataclass
class Comparison:
    field: FieldRef
    op: str  # = != < > <= >= LIKE IN NOT IN INCLUDES EXCLUDES
    value: Literal | list[Literal] | Query
    pos: int


@dataclass
class BoolOp:
    op: str  # AND | OR
    items: list[Any]


@dataclass
class Not:
    item: Any


@dataclass
class OrderItem:
    field: FieldRef
    desc: bool
    nulls_last: bool | None


@dataclass
class Query:
    fields: list[FieldRef | Count]
    sobject: str
    sobject_pos: int
    where: Any = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


def _string(text: str, start: int) -> tuple[Token, int]:
    """Read a '...' literal starting at the quote; returns (token, next position)."""
    out: list[str] = []
    like: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            return Token("string", "".join(out), start, "".join(like), text[start : i + 1]), i + 1
        if ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt in ("%", "_"):
                out.append(nxt)
                like.append("\\" + nxt)  # a literal % or _ inside LIKE
            elif nxt in ESCAPES:
                out.append(ESCAPES[nxt])
                like.append("\\\\" if nxt == "\\" else ESCAPES[nxt])
            else:
                end = text.find("'", i + 1)
                body = text[start + 1 : end if end != -1 else len(text)]
                raise SoqlError("MALFORMED_QUERY", f"Invalid string literal '{body}'. Illegal character sequence "
                                f"'\\{nxt}' in string literal.", start)
            i += 2
            continue
        out.append(ch)
        like.append(ch)
        i += 1
    raise SoqlError("MALFORMED_QUERY", f"line 1:{start} mismatched character '<EOF>' expecting '''", start)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text[pos]}'", pos)
        kind = m.lastgroup or ""
        if kind == "string":
            tok, pos = _string(text, pos)
            tokens.append(tok)
            continue
        value = m.group(kind)
        if kind == "ident" and value.upper() in KEYWORDS:
            tokens.append(Token("keyword", value.upper(), pos, text=value))
        elif kind != "ws":
            tokens.append(Token(kind, value, pos, text=value))
        pos = m.end()
    tokens.append(Token("eof", None, len(text), text="<EOF>"))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Token:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def unexpected(self, tok: Token | None = None) -> SoqlError:
        tok = tok or self.peek()
        return SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok.text}'", tok.pos)

    def at(self, kind: str, value: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (value is None or tok.value == value)

    def expect(self, kind: str, value: str | None = None) -> Token:
        if not self.at(kind, value):
            raise self.unexpected()
        return self.next()

    def accept(self, kind: str, value: str | None = None) -> Token | None:
        return self.next() if self.at(kind, value) else None

    # -- grammar ---------------------------------------------------------------------------------
    def query(self) -> Query:
        self.expect("keyword", "SELECT")
        fields: list[FieldRef | Count] = [self.select_item()]
        while self.accept("op", ","):
            fields.append(self.select_item())
        self.expect("keyword", "FROM")
        obj = self.expect("ident")
        if "." in obj.value:
            raise self.unexpected(obj)
        q = Query(fields, obj.value, obj.pos)
        if self.accept("keyword", "WHERE"):
            q.where = self.or_expr()
        if self.at("keyword", "GROUP") or self.at("keyword", "HAVING"):
            tok = self.peek()
            raise SoqlError("MALFORMED_QUERY", f"{tok.value} is not supported by the sandbox", tok.pos)
        if self.accept("keyword", "ORDER"):
            self.expect("keyword", "BY")
            q.order.append(self.order_item())
            while self.accept("op", ","):
                q.order.append(self.order_item())
        if self.accept("keyword", "LIMIT"):
            tok = self.peek()
            q.limit = self.integer()
            if q.limit > INT32_MAX:  # SOQL's numbers are 32-bit; a larger one must not reach the store
                raise self.unexpected(tok)
        if self.accept("keyword", "OFFSET"):
            tok = self.peek()
            q.offset = self.integer()
            if q.offset > MAX_OFFSET:
                raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}", tok.pos)
        return q

    def integer(self) -> int:
        tok = self.expect("number")
        if not re.fullmatch(r"\d+", tok.value):
            raise self.unexpected(tok)
        return int(tok.value)

    def field_ref(self) -> FieldRef:
        tok = self.expect("ident")
        return FieldRef(tok.value.split("."), tok.pos)

    def select_item(self) -> FieldRef | Count:
        tok = self.peek()
        if tok.kind == "ident" and tok.value.upper() == "COUNT" and self.peek(1).value == "(":
            self.next()
            self.next()
            inner = None if self.at("op", ")") else self.field_ref()
            self.expect("op", ")")
            alias = self.next().value if self.at("ident") else None
            return Count(inner, alias, tok.pos)
        return self.field_ref()

    def order_item(self) -> OrderItem:
        ref = self.field_ref()
        desc = bool(self.accept("keyword", "DESC"))
        if not desc:
            self.accept("keyword", "ASC")
        nulls_last = None
        if self.accept("keyword", "NULLS"):
            if self.accept("keyword", "LAST"):
                nulls_last = True
            else:
                self.expect("keyword", "FIRST")
                nulls_last = False
        return OrderItem(ref, desc, nulls_last)

    def or_expr(self) -> Any:
        items = [self.and_expr()]
        while self.accept("keyword", "OR"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("OR", items)

    def and_expr(self) -> Any:
        items = [self.unary()]
        while self.accept("keyword", "AND"):
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("AND", items)

    def unary(self) -> Any:
        if self.accept("keyword", "NOT"):
            return Not(self.unary())
        if self.accept("op", "("):
            inner = self.or_expr()
            self.expect("op", ")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        ref = self.field_ref()
        tok = self.next()
        if tok.kind == "op" and tok.value in ("=", "!=", "<>", "<", ">", "<=", ">="):
            op = "!=" if tok.value == "<>" else tok.value
            return Comparison(ref, op, self.literal(), tok.pos)
        if tok.kind == "keyword" and tok.value == "LIKE":
            return Comparison(ref, "LIKE", self.literal(), tok.pos)
        if tok.kind == "keyword" and tok.value in ("IN", "INCLUDES", "EXCLUDES"):
            return Comparison(ref, tok.value, self.in_list(), tok.pos)
        if tok.kind == "keyword" and tok.value == "NOT" and self.accept("keyword", "IN"):
            return Comparison(ref, "NOT IN", self.in_list(), tok.pos)
        raise self.unexpected(tok)

    def in_list(self) -> list[Literal] | Query:
        self.expect("op", "(")
        if self.at("keyword", "SELECT"):
            sub = self.query()
            self.expect("op", ")")
            return sub
        values = [self.literal()]
        while self.accept("op", ","):
            values.append(self.literal())
        self.expect("op", ")")
        return values

    def literal(self) -> Literal:
        tok = self.next()
        if tok.kind == "string":
            return Literal("string", tok.value, tok.pos, tok.like)
        if tok.kind == "number":
            return Literal("number", float(tok.value) if "." in tok.value else int(tok.value), tok.pos)
        if tok.kind in ("date", "datetime"):
            return Literal(tok.kind, tok.value, tok.pos)
        if tok.kind == "keyword" and tok.value in ("TRUE", "FALSE"):
            return Literal("bool", tok.value == "TRUE", tok.pos)
        if tok.kind == "keyword" and tok.value == "NULL":
            return Literal("null", None, tok.pos)
        if tok.kind == "ident" and tok.value.upper() in DATE_KEYWORDS:
            return Literal("dateliteral", (tok.value.upper(), None), tok.pos)
        if tok.kind == "ident" and tok.value.upper() in DATE_N_KEYWORDS:
            self.expect("op", ":")
            return Literal("dateliteral", (tok.value.upper(), self.integer()), tok.pos)
        raise self.unexpected(tok)


def parse(text: str) -> Query:
    """Parse one SOQL query; raises :class:`SoqlError`."""
    p = _Parser(text)
    q = p.query()
    if not p.at("eof"):
        raise p.unexpected()
    return q
