"""Query definitions -> typed settings: every bad file is refused with its file, line, key and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcsf.config import ConfigError, ConfigProblem
from mcsf.queries import (
    MirrorAction,
    NewStatus,
    PushMode,
    QueryDefinition,
    SfObject,
    collect_queries,
    load_queries,
    parse_query_file,
    problem_in,
    queries_dir,
    where_problem,
)

REPO = Path(__file__).resolve().parents[3]

GOOD = """\
object: Contact
where: |
  Email != null
  AND (LeadSource = 'Web' OR Account.Name LIKE 'A%')
audience_id: "a1b2c3d4e5"
status_if_new: subscribed
tags: ["SF: Customers"]
fields:
  FirstName: FNAME
  Account.Name: COMPANY
mode: mirror
mirror_action: archive
"""


def _write(tmp_path: Path, text: str, name: str = "q.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(tmp_path: Path, text: str) -> list[ConfigProblem]:
    query, problems, _ = parse_query_file(_write(tmp_path, text))
    assert query is None
    return problems


def test_a_good_file_loads_with_its_types(tmp_path):
    [query] = load_queries(_write(tmp_path, GOOD).parent)
    assert query.object is SfObject.CONTACT
    assert query.where == "Email != null\nAND (LeadSource = 'Web' OR Account.Name LIKE 'A%')"
    assert query.status_if_new is NewStatus.SUBSCRIBED
    assert query.mode is PushMode.MIRROR and query.mirror_action is MirrorAction.ARCHIVE
    assert query.fields == {"FirstName": "FNAME", "Account.Name": "COMPANY"}
    assert query.name == "q" and query.mirror_tag == "SF: Customers"
    assert query.use_audience_map is False


def test_defaults_are_additive_untag_and_no_tags():
    query = QueryDefinition(object="Lead", where="Email != null", audience_id="abc", status_if_new="pending")
    assert query.mode is PushMode.ADDITIVE and query.mirror_action is MirrorAction.UNTAG
    assert query.tags == [] and query.fields == {} and query.mirror_tag is None


def test_the_shipped_examples_load():
    queries = load_queries(REPO / "include" / "queries")
    assert {q.name for q in queries} == {"partner_leads", "customer_contacts"}


# (file text, line, key path, fragments of the message)
BAD = [
    ("object: Contact\nwher: Email != null\naudience_id: a1\nstatus_if_new: subscribed\n", 2, "wher",
     ["unknown key 'wher'", "did you mean 'where'", "allowed keys: object, where, audience_id"]),
    ("object: Contact\nwhere: Email != null\naudience_id: a1\n", 1, "status_if_new",
     ["required key missing", "status_if_new:"]),
    ("object: Account\nwhere: Email != null\naudience_id: a1\nstatus_if_new: subscribed\n", 1, "object",
     ["'Account'", "'Lead' or 'Contact'"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: unsubscribed\n", 4, "status_if_new",
     ["'unsubscribed'", "'subscribed', 'pending' or 'transactional'"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nmode: sync\n", 5, "mode",
     ["'additive' or 'mirror'"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nuse_audience_map: yes\n", 5,
     "use_audience_map", ["valid boolean", "write true or false"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a b\nstatus_if_new: pending\n", 3, "audience_id",
     ["not a Mailchimp audience id"]),
    ("object: Lead\naudience_id: a1\nstatus_if_new: pending\nwhere: |\n  (Email != null\n", 4, "where",
     ["1 parenthesis left open"]),
    ("object: Lead\naudience_id: a1\nstatus_if_new: pending\nwhere: \"Email != null) OR (IsDeleted = false\"\n", 4,
     "where", ["closes a parenthesis the clause never opened"]),
    ("object: Lead\naudience_id: a1\nstatus_if_new: pending\nwhere: Email != null LIMIT 5\n", 4, "where",
     ["LIMIT at character 15", "only a condition"]),
    ("object: Lead\naudience_id: a1\nstatus_if_new: pending\nwhere: WHERE Email != null\n", 4, "where",
     ["without the WHERE keyword"]),
    ("object: Lead\naudience_id: a1\nstatus_if_new: pending\nwhere: \"Name = 'x\"\n", 4, "where",
     ["never closed"]),
    ("object: Lead\naudience_id: a1\nstatus_if_new: pending\nwhere: \"  \"\n", 4, "where", ["empty"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nfields:\n  FirstName: fname\n", 6,
     "fields.FirstName", ["'fname'", "e.g. 'FNAME'"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nfields:\n  Email: EMAIL\n", 6,
     "fields.Email", ["always synced"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nfields:\n  First Name: FNAME\n",
     6, "fields.First Name", ["not a Salesforce field API name"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nfields:\n  FirstName: FNAME\n"
     "  Name: FNAME\n", 7, "fields.Name", ["FNAME is already fed from FirstName"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nfields:\n  City: ADDRESS.town\n",
     6, "fields.City", ["address part"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nfields:\n  City: ADDRESS.city\n",
     5, "fields", ["only with addr1, city, state, zip", "ADDRESS.addr1, ADDRESS.state, ADDRESS.zip"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nfields: [FNAME]\n", 5, "fields",
     ["valid dictionary"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\ntags: [A, b, a]\n", 5, "tags[2]",
     ["'a' is already tags[0]"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\ntags: ['']\n", 5, "tags[0]",
     ["1 to 100 characters"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: subscribed\nmode: mirror\n", 1, "tags",
     ["mirror mode needs a tag"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nmode: mirror\ntags: [x]\n", 4,
     "status_if_new", ["cannot see pending members"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nmirror_action: archive\n", 5,
     "mirror_action", ["applies with mode: mirror only"]),
    ("object: Lead\nobject: Contact\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\n", 2, "object",
     ["given twice (first on line 1)"]),
    ("object: Lead\nwhere: [Email\n", 3, "", ["YAML syntax error", "where: |"]),
    ("", 1, "", ["the file is empty"]),
    ("- object: Lead\n", 1, "", ["a list, not a mapping"]),
    ("object: Lead\nwhere: Email != null\naudience_id: a1\nstatus_if_new: pending\nsource_file: /etc/x\n", 5,
     "source_file", ["unknown key 'source_file'"]),
]


@pytest.mark.parametrize(("text", "line", "key", "fragments"), BAD, ids=[b[2] or b[3][0][:20] for b in BAD])
def test_a_bad_file_names_line_key_and_fix(tmp_path, text, line, key, fragments):
    problems = _problems(tmp_path, text)
    match = [p for p in problems if p.key == key]
    assert match, f"no problem at {key!r}: {[str(p) for p in problems]}"
    assert match[0].line == line, str(match[0])
    assert match[0].file == tmp_path / "q.yaml"
    for fragment in fragments:
        assert fragment in match[0].message, str(match[0])
    assert f"q.yaml:{line}: {key}" in str(match[0]) if key else f"q.yaml:{line}: " in str(match[0])


def test_every_problem_of_every_file_comes_at_once(tmp_path):
    _write(tmp_path, "object: Lead\nwhere: x = 1\naudience_id: a1\nstatus_if_new: maybe\nmod: mirror\n", "a.yaml")
    _write(tmp_path, "object: Lead\nwhere: (x\naudience_id: a1\nstatus_if_new: pending\n", "b.yaml")
    _write(tmp_path, GOOD, "c.yaml")
    (tmp_path / "README.md").write_text("not a query")
    with pytest.raises(ConfigError) as caught:
        load_queries(tmp_path)
    where = {(p.file.name, p.key) for p in caught.value.problems}
    assert where == {("a.yaml", "status_if_new"), ("a.yaml", "mod"), ("b.yaml", "where")}
    queries, problems = collect_queries(tmp_path)
    assert [q.name for q in queries] == ["c"] and len(problems) == 3


def test_a_mirror_tag_belongs_to_its_query(tmp_path):
    _write(tmp_path, GOOD, "mirror.yaml")
    _write(tmp_path, "object: Lead\nwhere: Email != null\naudience_id: a1b2c3d4e5\nstatus_if_new: pending\n"
                     "tags: [other, 'sf: customers']\n", "adds.yaml")
    _write(tmp_path, "object: Lead\nwhere: Email != null\naudience_id: zzz\nstatus_if_new: pending\n"
                     "tags: ['SF: Customers']\n", "elsewhere.yaml")  # another audience: no clash
    queries, problems = collect_queries(tmp_path)
    assert len(queries) == 3
    [problem] = problems
    assert (problem.file.name, problem.line, problem.key) == ("mirror.yaml", 7, "tags[0]")
    assert "adds.yaml adds it too" in problem.message


def test_a_file_name_must_be_usable_as_a_task_and_path_name(tmp_path):
    [problem] = parse_query_file(_write(tmp_path, GOOD, "my query.yaml"))[1]
    assert "letters, digits, _ or -" in problem.message


def test_no_directory_means_no_queries_unless_one_was_named(tmp_path, monkeypatch):
    monkeypatch.delenv("MCSF_QUERIES_DIR", raising=False)
    monkeypatch.setattr("mcsf.queries.queries_dir", lambda: tmp_path / "absent")
    assert collect_queries() == ([], [])
    queries, [problem] = collect_queries(tmp_path / "absent")
    assert queries == [] and "queries directory not found" in problem.message
    monkeypatch.setenv("MCSF_QUERIES_DIR", str(tmp_path / "absent2"))
    assert "MCSF_QUERIES_DIR" in collect_queries()[1][0].message


def test_queries_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MCSF_QUERIES_DIR", str(tmp_path))
    assert queries_dir() == tmp_path
    monkeypatch.delenv("MCSF_QUERIES_DIR")
    assert queries_dir() == REPO / "include" / "queries"


def test_problem_in_points_at_the_key_of_the_file(tmp_path):
    [query] = load_queries(_write(tmp_path, GOOD).parent)
    problem = problem_in(query, ("fields", "Account.Name"), "no such field")
    assert (problem.line, problem.key) == (10, "fields.Account.Name")
    inline = QueryDefinition(object="Lead", where="x = 1", audience_id="a", status_if_new="pending")
    assert problem_in(inline, ("where",), "bad") == ConfigProblem(None, None, "where", "bad")


@pytest.mark.parametrize("where", [
    "Email != null",
    "(LeadSource = 'Web' OR LeadSource = 'Other') AND NOT (Status = 'Closed')",
    "LastName = 'O\\'Brien (Jr)' AND Title LIKE '%; ORDER BY x%'",  # quotes, parentheses and words inside a string
    "Id IN (SELECT Contact__c FROM MC_Subscriber__c WHERE Status__c = 'subscribed' LIMIT 10)",
    "CreatedDate = LAST_N_DAYS:30 AND Account.Order__c > 1 AND Owner.Group = 'x'",
    "Description = 'a backslash \\\\' AND Name != null",
])
def test_where_clauses_that_stand_on_their_own_pass(where):
    assert where_problem(where) is None


@pytest.mark.parametrize(("where", "fragment"), [
    ("Email != null) OR (Name != null", "never opened"),
    ("(Email != null", "left open"),
    ("Email != null ORDER BY Name", "ORDER at character 15"),
    ("Email != null; DELETE", "';' is not SOQL"),
    ('Name = "x"', "single quotes"),
    ("Name = 'O\\'Brien", "never closed"),
    ("Name = 'x\\'", "never closed"),
    ("Email != null WITH SECURITY_ENFORCED", "WITH"),
    ("Name = 'x' FOR UPDATE", "FOR"),
    ("", "empty"),
])
def test_where_clauses_that_could_escape_their_parentheses_fail(where, fragment):
    problem = where_problem(where)
    assert problem is not None and fragment in problem
