"""Ids, the metadata parser, value coercion and upsert matching, on a tiny fixture org."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sandbox.salesforce import ids
from sandbox.salesforce.dml import Writer
from sandbox.salesforce.rowparse import Parser
from sandbox.salesforce.schema import load_schema
from sandbox.salesforce.store import Store
from sandbox.salesforce.values import FieldError, TypeMismatch, coercer

if TYPE_CHECKING:
    from pathlib import Path

NS = 'xmlns="http://soap.sforce.com/2006/04/metadata"'
FIELDS = {
    "Key__c": "<type>Text</type><length>10</length><externalId>true</externalId><unique>true</unique>"
              "<caseSensitive>false</caseSensitive>",
    "Loose_Key__c": "<type>Text</type><length>10</length><externalId>true</externalId>",
    "Amount__c": "<type>Number</type><precision>5</precision><scale>2</scale>",
    "Active__c": "<type>Checkbox</type><defaultValue>true</defaultValue>",
    "Stage__c": "<type>Picklist</type><valueSet><restricted>true</restricted><valueSetDefinition>"
                "<value><fullName>new</fullName><default>true</default><label>New</label></value>"
                "<value><fullName>done</fullName><default>false</default><label>Done</label></value>"
                "</valueSetDefinition></valueSet>",
    "Notes__c": "<type>LongTextArea</type><length>1000</length><visibleLines>3</visibleLines>",
    "Lead__c": "<type>Lookup</type><referenceTo>Lead</referenceTo><relationshipName>Widgets</relationshipName>",
    "When__c": "<type>DateTime</type>",
    "Day__c": "<type>Date</type>",
}


def write_metadata(root: Path, objects: tuple[str, ...] = ("Widget__c",)) -> Path:
    base = root / "force-app" / "main" / "default"
    for obj in objects:
        folder = base / "objects" / obj / "fields"
        folder.mkdir(parents=True)
        (base / "objects" / obj / f"{obj}.object-meta.xml").write_text(
            f'<?xml version="1.0"?><CustomObject {NS}><label>Widget</label><pluralLabel>Widgets</pluralLabel>'
            "<nameField><label>Widget Name</label><type>Text</type></nameField>"
            "<sharingModel>ReadWrite</sharingModel></CustomObject>")
        for name, body in FIELDS.items():
            (folder / f"{name}.field-meta.xml").write_text(
                f'<?xml version="1.0"?><CustomField {NS}><fullName>{name}</fullName><label>{name[:-3]}</label>'
                f"{body}</CustomField>")
    (base / "standardValueSets").mkdir(parents=True, exist_ok=True)
    (base / "standardValueSets" / "LeadSource.standardValueSet-meta.xml").write_text(
        f'<?xml version="1.0"?><StandardValueSet {NS}><standardValue><fullName>Mailchimp</fullName>'
        "<default>true</default><label>Mailchimp</label></standardValue></StandardValueSet>")
    return root / "force-app"


@pytest.mark.parametrize(
    ("id15", "id18"),
    [("001A0000006Vm9r", "001A0000006Vm9rIAC"), ("003000000000001", "003000000000001AAA"),
     ("a0BZZZZZZZZZZZZ", "a0BZZZZZZZZZZZZ4P5"[:15] + ids.checksum("a0BZZZZZZZZZZZZ"))],
)
def test_case_safe_ids(id15: str, id18: str) -> None:
    assert ids.to18(id15) == id18 and ids.to18(id18) == id18
    assert ids.to18(id18.lower()) == id18  # the 18-char form is case-insensitive
    if id15.lower() != id15:
        assert ids.to18(id15.lower()) != id18  # the 15-char form is not


@pytest.mark.parametrize("bad", ["", "001", "001A0000006Vm9rIAX", "001A0000006Vm9r!!!", "001A0000006Vm9rIA"])
def test_malformed_ids(bad: str) -> None:
    assert not ids.is_id(bad)


def test_encode_decode_round_trip() -> None:
    for n in (1, 61, 62, 3844, 10**9):
        assert ids.decode(ids.encode("00Q", n)) == ("00Q", n)


@pytest.mark.parametrize(("start", "count"), [(1, 10_000), (3843, 3), (3844 * 3 - 1, 3844 * 2 + 7), (62**8 - 5, 5)])
def test_encode_range_matches_encode(start: int, count: int) -> None:
    assert ids.encode_range("a0B", start, count) == [ids.encode("a0B", n) for n in range(start, start + count)]


def test_schema_from_metadata(tmp_path: Path) -> None:
    schema = load_schema(write_metadata(tmp_path), {})
    w = schema.objects["Widget__c"]
    assert (w.key_prefix, w.label, w.label_plural, w.fields["Name"].label) == ("a0A", "Widget", "Widgets",
                                                                                "Widget Name")
    f = w.fields
    assert (f["Key__c"].external_id, f["Key__c"].unique, f["Key__c"].collation) == (True, True, "NOCASE")
    assert (f["Amount__c"].type, f["Amount__c"].precision, f["Amount__c"].scale) == ("double", 5, 2)
    assert (f["Active__c"].type, f["Active__c"].default) == ("boolean", True)
    assert (f["Stage__c"].restricted, f["Stage__c"].default) == (True, "new")
    assert (f["Notes__c"].type, f["Notes__c"].length) == ("textarea", 1000)
    assert (f["Lead__c"].relationship_name, f["Lead__c"].child_relationship) == ("Lead__r", "Widgets__r")
    assert [p.value for p in schema.objects["Lead"].fields["LeadSource"].picklist] == ["Mailchimp"]


def test_key_prefixes_stay_put_when_objects_are_added(tmp_path: Path) -> None:
    meta = write_metadata(tmp_path / "one")
    first = Store(tmp_path / "state", meta).schema.objects["Widget__c"].key_prefix
    meta2 = write_metadata(tmp_path / "two", ("Aardvark__c", "Widget__c"))
    schema = Store(tmp_path / "state", meta2).schema
    assert schema.objects["Widget__c"].key_prefix == first == "a0A"
    assert schema.objects["Aardvark__c"].key_prefix == "a0B"


@pytest.mark.parametrize(
    ("field", "raw", "stored"),
    [
        ("Amount__c", "12.345", 12.35), ("Amount__c", 7, 7.0), ("Active__c", "TRUE", 1), ("Active__c", False, 0),
        ("When__c", "2026-11-20T10:00:00+01:00", "2026-11-20T09:00:00.000Z"),
        ("When__c", "2026-11-20T10:00:00.5Z", "2026-11-20T10:00:00.500Z"),
        ("When__c", "2026-11-20", "2026-11-20T00:00:00.000Z"), ("Day__c", "2026-02-28", "2026-02-28"),
        ("Stage__c", "done", "done"), ("Key__c", "", None),
    ],
)
def test_coercion(tmp_path: Path, field: str, raw: object, stored: object) -> None:
    schema = load_schema(write_metadata(tmp_path), {})
    assert coercer(schema.objects["Widget__c"].fields[field], schema)(raw) == stored


@pytest.mark.parametrize(
    ("field", "raw", "error"),
    [("Amount__c", "1000", FieldError), ("Amount__c", "x", TypeMismatch), ("Day__c", "2026-02-30", TypeMismatch),
     ("Stage__c", "Done", FieldError), ("Key__c", "x" * 11, FieldError), ("Active__c", "yes", TypeMismatch)],
)
def test_coercion_errors(tmp_path: Path, field: str, raw: object, error: type[Exception]) -> None:
    schema = load_schema(write_metadata(tmp_path), {})
    with pytest.raises(error):
        coercer(schema.objects["Widget__c"].fields[field], schema)(raw)


def test_upsert_matching_rules(tmp_path: Path) -> None:
    store = Store(tmp_path / "state", write_metadata(tmp_path))
    writer, parser = Writer(store), Parser(store.schema)
    w = store.schema.objects["Widget__c"]

    def run(op: str, records: list[dict[str, object]], ext: str) -> list[object]:
        with store.transaction() as c:
            return writer.apply(c, w, op, [parser.json_row(w, r, op) for r in records], w.fields[ext])

    made = run("upsert", [{"Key__c": "AbC"}], "Key__c")[0]
    again = run("upsert", [{"Key__c": "abc", "Amount__c": 1}], "Key__c")[0]  # case-insensitive field
    assert made.created and not again.created and again.id == made.id
    run("insert", [{"Loose_Key__c": "same", "Key__c": "k1"}, {"Loose_Key__c": "same", "Key__c": "k2"}], "Key__c")
    dup = run("upsert", [{"Loose_Key__c": "same"}], "Loose_Key__c")[0]
    assert dup.errors[0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    row = store.conn().execute('SELECT Name, Active__c, Stage__c FROM "Widget__c" WHERE "Id" = ?',
                               (made.id,)).fetchone()
    assert row == (made.id, 1, "new")  # Name defaults to the Id; checkbox and picklist defaults applied
