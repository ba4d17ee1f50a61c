"""Mapping files -> settings: every bad file is refused with its file, line, key and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcsf.config import (
    AudienceMapping,
    ConfigError,
    ConfigProblem,
    Direction,
    FieldMap,
    Overwrite,
    SyncMode,
    collect_mappings,
    load_mapping,
    load_mappings,
    mappings_dir,
    problem_at,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mappings"
REPO = Path(__file__).resolve().parents[3]


def _problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    return caught.value.problems


# file, line, key path, fragments the message must contain
BAD_FILES = [
    ("syntax_error.yaml", 5, "", ["YAML syntax error", "line 5, column 16"]),
    ("unknown_key.yaml", 5, "leads.lead_sauce",
     ["unknown key 'lead_sauce'", "did you mean 'lead_source'",
      "allowed keys: create, defaults, lead_source, status"]),
    ("unknown_top_key.yaml", 2, "sync_mod", ["did you mean 'sync_mode'", "audience_id, name, sync_mode"]),
    ("bad_enum.yaml", 5, "fields[0].direction",
     ["'sideways'", "'mailchimp_to_salesforce', 'salesforce_to_mailchimp' or 'both'"]),
    ("bad_sync_mode.yaml", 2, "sync_mode", ["'everything'", "'activity', 'subscribers_only' or 'off'"]),
    ("duplicate_merge_tag.yaml", 7, "fields[2].merge_tag", ["FNAME is already mapped in fields[0]"]),
    ("missing_audience_id.yaml", 2, "audience_id", ["required key missing", "audience_id:"]),
    ("wrong_type_segment.yaml", 2, "segment_id", ["valid integer", "'twelve'"]),
    ("wrong_type_fields.yaml", 2, "fields", ["valid list", "`- …` lines"]),
    ("wrong_type_create.yaml", 3, "leads.create", ["valid boolean", "write true or false"]),
    ("email_mapped.yaml", 5, "fields[1].merge_tag", ["always synced"]),
    ("no_target.yaml", 3, "fields[0]", ["add a lead_field, a contact_field or both"]),
    ("bad_address_part.yaml", 3, "fields[0].merge_tag", ["addr1, addr2, city, state, zip, country"]),
    ("lower_case_tag.yaml", 3, "fields[0].merge_tag", ["'fname'", "e.g. 'FNAME'"]),
    ("share_out_of_range.yaml", 2, "max_reject_share", ["less than or equal to 1", "1.5"]),
    ("retention_zero.yaml", 2, "activity_retention_days", ["greater than or equal to 1"]),
    ("field_written_twice.yaml", 6, "fields[1].lead_field", ["Lead.FirstName is already written from FNAME"]),
    ("duplicate_key.yaml", 3, "sync_mode", ["given twice (first on line 2)"]),
    ("source_file_key.yaml", 2, "source_file", ["unknown key 'source_file'"]),
    ("python_tag.yaml", 1, "", ["python/object/apply", "only plain YAML values"]),
    ("empty.yaml", 1, "", ["the file is empty"]),
    ("top_level_list.yaml", 1, "", ["must be a mapping of keys", "not a list"]),
]


@pytest.mark.parametrize(("name", "line", "key", "fragments"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_is_refused_with_file_line_key_and_fix(name: str, line: int, key: str,
                                                        fragments: list[str]) -> None:
    problems = _problems(FIXTURES / "bad" / name)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.file.name, problem.line, problem.key) == (name, line, key)
    for fragment in fragments:
        assert fragment in problem.message
    assert str(problem).endswith(f"{name}:{line}: {key + ': ' if key else ''}{problem.message}")


def test_every_bad_fixture_is_in_the_table() -> None:
    assert {p.name for p in (FIXTURES / "bad").iterdir()} == {b[0] for b in BAD_FILES}


def _fields_yaml(n: int) -> str:
    entries = "".join(f"  - merge_tag: F{i}\n    lead_field: Field{i}__c\n" for i in range(n))
    return f"audience_id: a1b2c3d4e5\nfields:\n{entries}"


def test_81_fields_are_too_many_and_80_are_fine(tmp_path: Path) -> None:
    (tmp_path / "many.yaml").write_text(_fields_yaml(81))
    problems = _problems(tmp_path / "many.yaml")
    assert [(p.line, p.key) for p in problems] == [(2, "fields")]
    assert "81 fields mapped, at most 80 allowed — remove 1" in problems[0].message
    (tmp_path / "many.yaml").write_text(_fields_yaml(80))
    assert len(load_mapping(tmp_path / "many.yaml").fields) == 80


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "many_faults.yaml"
    path.write_text(
        "audience_id: a1b2c3d4e5\n"
        "sync_mode: sometimes\n"
        "fields:\n"
        "  - merge_tag: FNAME\n"
        "    lead_field: FirstName\n"
        "  - merge_tag: FNAME\n"          # duplicate tag: found although other entries are broken
        "    contact_field: FirstName\n"
        "  - merge_tag: PHONE\n"
        "    lead_field: Phone\n"
        "    overwrite: never\n"
    )
    problems = _problems(path)
    assert [(p.line, p.key) for p in problems] == [
        (2, "sync_mode"), (6, "fields[1].merge_tag"), (10, "fields[2].overwrite")]
    text = str(ConfigError(problems))
    assert len(text.splitlines()) == 3
    assert all("many_faults.yaml:" in line for line in text.splitlines())


def test_duplicate_audience_names_both_files() -> None:
    with pytest.raises(ConfigError) as caught:
        load_mappings(FIXTURES / "duplicate_audience")
    [problem] = caught.value.problems
    assert (problem.file.name, problem.line, problem.key) == ("second.yaml", 3, "audience_id")
    assert "first.yaml" in problem.message and "a1b2c3d4e5" in problem.message


def test_collect_mappings_keeps_the_good_files_next_to_the_problems(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("audience_id: good123\n")
    (tmp_path / "bad.yaml").write_text("audience_id: bad123\nsync_mode: nope\n")
    mappings, problems = collect_mappings(tmp_path)
    assert [m.audience_id for m in mappings] == ["good123"]
    assert [p.file.name for p in problems] == ["bad.yaml"]
    with pytest.raises(ConfigError):
        load_mappings(tmp_path)


def test_good_file_loads_every_key() -> None:
    m = load_mapping(FIXTURES / "good" / "full.yaml")
    assert m.audience_id == "a1b2c3d4e5" and m.sync_mode is SyncMode.ACTIVITY and m.segment_id == 17
    assert m.leads.create and m.leads.defaults == {"Company": "[not provided]", "NumberOfEmployees": "5"}
    assert m.fields[0].direction is Direction.BOTH and m.fields[1].overwrite is Overwrite.ALWAYS
    assert m.fields[1].base_tag == "ADDRESS" and m.fields[1].address_part == "city"
    assert m.lead_fields() == {"FNAME": "FirstName", "ADDRESS.city": "City"}
    assert m.contact_fields() == {"FNAME": "FirstName", "ADDRESS.city": "MailingCity"}
    assert m.source_file == FIXTURES / "good" / "full.yaml" and m.label == "full"
    assert m.create_merge_fields[0].as_api_body() == {"tag": "COMPANY", "name": "Company", "type": "text",
                                                      "required": False}
    with pytest.raises(Exception, match="frozen"):
        m.sync_mode = SyncMode.OFF  # type: ignore[misc]


def test_directory_load_skips_non_yaml_and_filters_off(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not: [a mapping")
    (tmp_path / ".hidden.yaml").write_text("broken: [")
    (tmp_path / "a.yml").write_text("audience_id: aaa\nsync_mode: off\n")  # `off` stays a string
    (tmp_path / "b.yaml").write_text("audience_id: bbb\n")
    assert [m.audience_id for m in load_mappings(tmp_path)] == ["aaa", "bbb"]
    assert [m.audience_id for m in load_mappings(tmp_path, include_off=False)] == ["bbb"]


def test_numeric_audience_id_must_be_quoted(tmp_path: Path) -> None:
    (tmp_path / "n.yaml").write_text("audience_id: 1234567890\n")
    [problem] = _problems(tmp_path / "n.yaml")
    assert problem.key == "audience_id" and "put it in quotes" in problem.message


def test_mappings_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MCSF_MAPPINGS_DIR", raising=False)
    assert mappings_dir() == REPO / "include" / "mappings"
    monkeypatch.setenv("MCSF_MAPPINGS_DIR", str(tmp_path))
    assert mappings_dir() == tmp_path
    with pytest.raises(ConfigError, match="mappings directory not found"):
        load_mappings(tmp_path / "missing")


def test_problem_at_points_into_the_file() -> None:
    m = load_mapping(FIXTURES / "good" / "full.yaml")
    problem = problem_at(m, ("fields", 1, "contact_field"), "no such field")
    assert (problem.line, problem.key) == (21, "fields[1].contact_field")
    assert problem_at(m, ("leads", "defaults", "Nope"), "x").line == 10  # missing key: its parent's line
    inline = AudienceMapping(audience_id="x1", fields=[FieldMap(merge_tag="FNAME", lead_field="FirstName")])
    assert str(problem_at(inline, ("fields", 0), "x")) == "fields[0]: x"


def test_shipped_mappings_load() -> None:
    mappings = load_mappings(REPO / "include" / "mappings")
    assert len(mappings) >= 3
    assert {m.sync_mode for m in mappings} >= {SyncMode.ACTIVITY, SyncMode.SUBSCRIBERS_ONLY}
    assert any(m.leads.create for m in mappings) and any(m.segment_id for m in mappings)
    assert any(m.create_merge_fields for m in mappings)
