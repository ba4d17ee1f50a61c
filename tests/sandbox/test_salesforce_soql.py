"""SOQL: parser (table-driven), escapes, malformed queries, and SQL semantics against a real store."""

from __future__ import annotations

from datetime import date

import pytest

from sandbox.salesforce.dml import Writer
from sandbox.salesforce.query import compile_soql, date_range
from sandbox.salesforce.rowparse import Parser
from sandbox.salesforce.soql import BoolOp, Comparison, Count, Not, SoqlError, parse
from sandbox.salesforce.store import Store


@pytest.mark.parametrize(
    ("text", "value", "like"),
    [
        (r"'plain'", "plain", "plain"),
        (r"'O\'Brien'", "O'Brien", "O'Brien"),
        (r"'say \"hi\"'", 'say "hi"', 'say "hi"'),
        (r"'back\\slash'", "back\\slash", "back\\\\slash"),
        (r"'a\nb\rc\td\be\ff'", "a\nb\rc\td\be\ff", "a\nb\rc\td\be\ff"),
        (r"'100\%'", "100%", "100\\%"),
        (r"'under\_score'", "under_score", "under\\_score"),
        (r"'%wild_'", "%wild_", "%wild_"),
        ("'ünïcødé 😀'", "ünïcødé 😀", "ünïcødé 😀"),
    ],
)
def test_string_literal_escapes(text: str, value: str, like: str) -> None:
    cmp = parse(f"SELECT Id FROM Lead WHERE Email = {text}").where
    assert (cmp.value.value, cmp.value.like) == (value, like)


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("SELECT Id, Name FROM Lead", lambda q: [f.path for f in q.fields] == [["Id"], ["Name"]]),
        ("select id from lead", lambda q: q.sobject == "lead"),
        ("SELECT COUNT() FROM Lead", lambda q: isinstance(q.fields[0], Count) and q.fields[0].field is None),
        ("SELECT COUNT(Id) n FROM Lead", lambda q: q.fields[0].alias == "n"),
        ("SELECT Audience__r.MC_Audience_Id__c FROM MC_Subscriber__c",
         lambda q: q.fields[0].path == ["Audience__r", "MC_Audience_Id__c"]),
        ("SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3", lambda q: q.where.op == "OR"),
        ("SELECT Id FROM Lead WHERE A = 1 AND (B = 2 OR C = 3)",
         lambda q: q.where.op == "AND" and isinstance(q.where.items[1], BoolOp)),
        ("SELECT Id FROM Lead WHERE NOT A = 1", lambda q: isinstance(q.where, Not)),
        ("SELECT Id FROM Lead WHERE A <> 1", lambda q: q.where.op == "!="),
        ("SELECT Id FROM Lead WHERE A IN ('x', 'y')", lambda q: [v.value for v in q.where.value] == ["x", "y"]),
        ("SELECT Id FROM Lead WHERE A NOT IN ('x')", lambda q: q.where.op == "NOT IN"),
        ("SELECT Id FROM Lead WHERE Id IN (SELECT Lead__c FROM MC_Subscriber__c)",
         lambda q: q.where.value.sobject == "MC_Subscriber__c"),
        ("SELECT Id FROM Lead WHERE A = null", lambda q: q.where.value.kind == "null"),
        ("SELECT Id FROM Lead WHERE A = TRUE", lambda q: q.where.value.value is True),
        ("SELECT Id FROM Lead WHERE A = -1.5", lambda q: q.where.value.value == -1.5),
        ("SELECT Id FROM Lead WHERE D = 2026-11-20", lambda q: q.where.value.kind == "date"),
        ("SELECT Id FROM Lead WHERE D > 2026-11-20T10:00:00Z", lambda q: q.where.value.kind == "datetime"),
        ("SELECT Id FROM Lead WHERE D > 2026-11-20T10:00:00+01:00", lambda q: q.where.value.kind == "datetime"),
        ("SELECT Id FROM Lead WHERE D = LAST_N_DAYS:30", lambda q: q.where.value.value == ("LAST_N_DAYS", 30)),
        ("SELECT Id FROM Lead WHERE D = today", lambda q: q.where.value.value == ("TODAY", None)),
        ("SELECT Id FROM Lead ORDER BY Name DESC NULLS LAST, Id",
         lambda q: (q.order[0].desc, q.order[0].nulls_last, q.order[1].desc) == (True, True, False)),
        ("SELECT Id FROM Lead LIMIT 10 OFFSET 20", lambda q: (q.limit, q.offset) == (10, 20)),
    ],
)
def test_parse(text: str, check: object) -> None:
    assert check(parse(text))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("SELECT Id FORM Lead", "unexpected token: 'FORM'", 11),
        ("SELECT Id FROM", "unexpected token: '<EOF>'", 15),
        ("SELECT FROM Lead", "unexpected token: 'FROM'", 8),
        ("SELECT Id FROM Lead WHERE", "unexpected token: '<EOF>'", 26),
        ("SELECT Id FROM Lead WHERE Email = 'x", "mismatched character '<EOF>'", 35),
        (r"SELECT Id FROM Lead WHERE Email = 'a\qb'", r"Illegal character sequence '\q' in string literal.", 35),
        ("SELECT Id FROM Lead LIMIT x", "unexpected token: 'x'", 27),
        ("SELECT Id FROM Lead WHERE Email == 'x'", "unexpected token: '='", 34),
        ("SELECT Id FROM Lead extra", "unexpected token: 'extra'", 21),
    ],
)
def test_malformed(text: str, message: str, column: int) -> None:
    with pytest.raises(SoqlError) as info:
        parse(text)
    assert info.value.code == "MALFORMED_QUERY"
    rendered = info.value.render(text)
    assert message in rendered
    assert f"ERROR at Row:1:Column:{column}" in rendered


def test_date_ranges_follow_salesforce() -> None:
    today = date(2026, 11, 20)  # a Friday
    assert date_range("LAST_N_DAYS", 1, today) == (date(2026, 11, 19), date(2026, 11, 21))  # yesterday and today
    assert date_range("THIS_WEEK", None, today) == (date(2026, 11, 15), date(2026, 11, 22))  # Sunday start
    assert date_range("LAST_MONTH", None, today) == (date(2026, 10, 1), date(2026, 11, 1))
    assert date_range("NEXT_N_DAYS", 2, today) == (date(2026, 11, 21), date(2026, 11, 23))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    st = Store(tmp_path_factory.mktemp("soql"))
    writer, parser = Writer(st), Parser(st.schema)
    lead = st.schema.objects["Lead"]
    rows = [
        {"LastName": "Alpha", "Company": "A", "Email": "alpha@x.com", "MC_Email_Key__c": "alpha@x.com",
         "AnnualRevenue": 10},
        {"LastName": "beta", "Company": "B", "Email": "BETA@x.com", "MC_Email_Key__c": "BETA@x.com",
         "AnnualRevenue": 20},
        {"LastName": "Gamma", "Company": "100% C_1", "Email": None, "AnnualRevenue": None},
        {"LastName": "O'Brien", "Company": "D", "Email": "ob@x.com", "HasOptedOutOfEmail": True},
    ]
    with st.transaction() as c:
        results = writer.apply(c, lead, "insert", [parser.json_row(lead, r, "insert") for r in rows])
    assert all(r.success for r in results), results
    return st


def names(store: Store, soql: str, include_deleted: bool = False) -> list[str]:
    plan = compile_soql(store.schema, soql, include_deleted)
    return [r[plan.outs[0].index] for r in plan.page(store.conn(), 2000, 0, 0)]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("LastName = 'ALPHA'", ["Alpha"]),  # strings compare case-insensitively
        ("MC_Email_Key__c = 'beta@x.com'", ["beta"]),  # a case-insensitive external id
        ("Email != 'alpha@x.com'", ["beta", "Gamma", "O'Brien"]),  # != keeps nulls, as SOQL does
        ("Email = null", ["Gamma"]),
        ("Email != null", ["Alpha", "beta", "O'Brien"]),
        ("LastName LIKE 'a%'", ["Alpha"]),
        ("LastName LIKE '_eta'", ["beta"]),
        (r"Company LIKE '100\% C\_%'", ["Gamma"]),
        (r"LastName = 'O\'Brien'", ["O'Brien"]),
        ("LastName IN ('alpha', 'GAMMA')", ["Alpha", "Gamma"]),
        ("LastName NOT IN ('alpha')", ["beta", "Gamma", "O'Brien"]),
        ("AnnualRevenue > 10", ["beta"]),
        ("AnnualRevenue >= 10 AND NOT LastName = 'beta'", ["Alpha"]),
        ("HasOptedOutOfEmail = true", ["O'Brien"]),
        ("(LastName = 'Alpha' OR LastName = 'beta') AND Company = 'B'", ["beta"]),
        ("CreatedDate = TODAY", ["Alpha", "beta", "Gamma", "O'Brien"]),
        ("CreatedDate < YESTERDAY", []),
        ("CreatedDate > 2020-01-01T00:00:00Z", ["Alpha", "beta", "Gamma", "O'Brien"]),
        ("CreatedDate > 2020-01-01T00:00:00+05:00", ["Alpha", "beta", "Gamma", "O'Brien"]),
        ("Id IN (SELECT Id FROM Lead WHERE Company = 'A')", ["Alpha"]),
    ],
)
def test_where_semantics(store: Store, where: str, expected: list[str]) -> None:
    assert names(store, f"SELECT LastName FROM Lead WHERE {where}") == expected


def test_count_forms(store: Store) -> None:
    c = store.conn()
    assert compile_soql(store.schema, "SELECT COUNT() FROM Lead").total(c) == 4
    assert compile_soql(store.schema, "SELECT COUNT(Email) FROM Lead").total(c) == 3  # non-null values only
    assert compile_soql(store.schema, "SELECT COUNT() FROM Lead WHERE Email = null").total(c) == 1


def test_order_limit_offset(store: Store) -> None:
    assert names(store, "SELECT LastName FROM Lead ORDER BY Email") == ["Gamma", "Alpha", "beta", "O'Brien"]
    assert names(store, "SELECT LastName FROM Lead ORDER BY Email NULLS LAST") == ["Alpha", "beta", "O'Brien", "Gamma"]
    assert names(store, "SELECT LastName FROM Lead ORDER BY LastName DESC LIMIT 2") == ["O'Brien", "Gamma"]
    assert names(store, "SELECT LastName FROM Lead ORDER BY LastName LIMIT 2 OFFSET 1") == ["beta", "Gamma"]
    assert names(store, "SELECT LastName FROM Lead ORDER BY LastName OFFSET 2000") == []  # the largest allowed


@pytest.mark.parametrize(
    ("soql", "code", "text"),
    [
        ("SELECT Foo FROM Lead", "INVALID_FIELD", "No such column 'Foo' on entity 'Lead'"),
        ("SELECT Id FROM Leed", "INVALID_TYPE", "sObject type 'Leed' is not supported"),
        ("SELECT Nope__r.Name FROM MC_Subscriber__c", "INVALID_FIELD", "Didn't understand relationship 'Nope__r'"),
        ("SELECT Id FROM Lead WHERE AnnualRevenue = '5'", "INVALID_FIELD", "must be of type double"),
        ("SELECT Id FROM Lead WHERE Email = 5", "INVALID_FIELD", "must be of type string"),
        ("SELECT Id FROM Lead WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"),
        ("SELECT Id, id FROM Lead", "MALFORMED_QUERY", "duplicate field selected: id"),
        ("SELECT Id FROM Lead OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"),
        (f"SELECT Id FROM Lead LIMIT {2**64}", "MALFORMED_QUERY", f"unexpected token: '{2**64}'"),
    ],
)
def test_invalid_queries(store: Store, soql: str, code: str, text: str) -> None:
    with pytest.raises(SoqlError) as info:
        compile_soql(store.schema, soql)
    assert info.value.code == code
    assert text in info.value.render(soql)


def test_case_sensitive_unique_fields_compare_exactly(store: Store) -> None:
    aud = store.schema.objects["MC_Audience__c"]
    parser = Parser(store.schema)
    with store.transaction() as c:
        Writer(store).apply(c, aud, "insert", [parser.json_row(aud, {"Name": "n", "MC_Audience_Id__c": "AbC"},
                                                                "insert")])
    assert names(store, "SELECT Name FROM MC_Audience__c WHERE MC_Audience_Id__c = 'abc'") == []
    assert names(store, "SELECT Name FROM MC_Audience__c WHERE MC_Audience_Id__c = 'AbC'") == ["n"]


def test_values_travel_as_parameters(store: Store) -> None:
    with pytest.raises(SoqlError):  # SOQL has no '' escape: this is malformed, as in Salesforce
        compile_soql(store.schema, "SELECT Id FROM Lead WHERE LastName = 'x'' OR 1=1 --'")
    plan = compile_soql(store.schema, r"SELECT Id FROM Lead WHERE LastName = 'x\' OR 1=1'")
    assert "1=1" not in plan.where_sql and "x' OR 1=1" in plan.params


def test_injection_attempt_is_just_a_string(store: Store) -> None:
    hostile = r"SELECT LastName FROM Lead WHERE LastName = 'a\' OR LastName LIKE \'%'"
    assert names(store, hostile) == []


def test_comparison_node_positions() -> None:
    q = parse("SELECT Id FROM Lead WHERE Email = 'x'")
    assert isinstance(q.where, Comparison) and q.where.field.pos == 26
