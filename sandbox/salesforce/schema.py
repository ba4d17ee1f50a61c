"""The org's data model: field and object definitions, read from SFDX source metadata.

Standard objects come from :mod:`standard_objects` (what every org ships); custom objects and
custom fields on standard objects come from ``include/salesforce/force-app`` (Metadata API XML),
so the emulator and a real org share one definition. Key prefixes of custom objects are handed
in by the store, which keeps them stable across restarts.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

NS = "{http://soap.sforce.com/2006/04/metadata}"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_METADATA = REPO_ROOT / "include" / "salesforce" / "force-app"

TEXT_TYPES = frozenset({"string", "email", "url", "phone", "picklist", "multipicklist", "textarea"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})


@dataclass(frozen=True)
class PicklistValue:
    value: str
    label: str
    default: bool = False
    active: bool = True


@dataclass(frozen=True)
class FieldDef:
    """One field as describe() shows it, plus what the store and validator need."""

    name: str
    label: str
    type: str  # describe type: id, string, email, double, boolean, reference, ...
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    defaulted_on_create: bool = False
    default: object = None
    picklist: tuple[PicklistValue, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None  # parent path: Audience__c -> Audience__r, AccountId -> Account
    child_relationship: str | None = None  # the parent's list of children (metadata relationshipName)
    name_field: bool = False
    extra_type: str | None = None  # e.g. "plaintextarea"

    @property
    def required_on_create(self) -> bool:
        return not self.nillable and self.createable and not self.defaulted_on_create

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES or self.type in ("id", "reference")

    @property
    def sql_type(self) -> str:
        if self.type in ("boolean", "int"):
            return "INTEGER"
        if self.type in NUMBER_TYPES:
            return "REAL"
        return "TEXT"

    @property
    def collation(self) -> str:
        """SOQL compares strings case-insensitively, except on unique case-sensitive fields and ids."""
        if self.type in ("id", "reference") or (self.unique and self.case_sensitive):
            return "BINARY"
        return "NOCASE" if self.sql_type == "TEXT" else "BINARY"


@dataclass
class ObjectDef:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    custom: bool
    fields: dict[str, FieldDef] = field(default_factory=dict)
    createable: bool = True
    name_kind: str = "Text"  # Text | AutoNumber | Compound (Lead/Contact Name from First+Last)
    display_format: str | None = None

    def __post_init__(self) -> None:
        self._lower = {k.lower(): v for k, v in self.fields.items()}

    def add(self, f: FieldDef) -> None:
        self.fields[f.name] = f
        self._lower[f.name.lower()] = f

    def field(self, name: str) -> FieldDef | None:
        return self._lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The lookup field whose relationship name is ``name`` (``Audience__r``, ``Account``)."""
        low = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == low:
                return f
        return None


@dataclass
class Schema:
    objects: dict[str, ObjectDef]

    def __post_init__(self) -> None:
        self._lower = {k.lower(): v for k, v in self.objects.items()}
        self._by_prefix = {o.key_prefix: o for o in self.objects.values()}

    def get(self, name: str) -> ObjectDef | None:
        return self._lower.get(name.lower())

    def by_prefix(self, prefix: str) -> ObjectDef | None:
        return self._by_prefix.get(prefix)


def metadata_dir() -> Path:
    return Path(os.environ.get("MCSF_SF_METADATA") or DEFAULT_METADATA)


def _text(el: ET.Element | None, tag: str, default: str | None = None) -> str | None:
    if el is None:
        return default
    child = el.find(NS + tag)
    return child.text.strip() if child is not None and child.text is not None else default


def _flag(el: ET.Element, tag: str) -> bool:
    return (_text(el, tag) or "false").lower() == "true"


def _int(el: ET.Element, tag: str, default: int) -> int:
    return int(_text(el, tag) or default)


def _values(container: ET.Element | None, tag: str) -> tuple[PicklistValue, ...]:
    if container is None:
        return ()
    out = []
    for v in container.findall(NS + tag):
        name = _text(v, "fullName") or ""
        out.append(PicklistValue(name, _text(v, "label", name) or name, _flag(v, "default"),
                                 (_text(v, "isActive") or "true").lower() != "false"))
    return tuple(out)


def parse_field(path: Path) -> FieldDef:
    """One ``<CustomField>`` file as a :class:`FieldDef`."""
    root = ET.parse(path).getroot()  # noqa: S314 - the repo's own metadata
    name = _text(root, "fullName") or path.name.split(".")[0]
    kind = _text(root, "type") or "Text"
    label = _text(root, "label") or name
    base = FieldDef(name=name, label=label, type="string", custom=name.endswith("__c"),
                    external_id=_flag(root, "externalId"), unique=_flag(root, "unique"),
                    case_sensitive=_flag(root, "caseSensitive"), nillable=not _flag(root, "required"))
    if _text(root, "formula"):
        return replace(base, type="string", length=1300, createable=False, updateable=False)
    if kind in ("Text", "EncryptedText"):
        return replace(base, length=_int(root, "length", 255))
    if kind in ("Email", "Phone", "Url"):
        lengths = {"Email": 80, "Phone": 40, "Url": 255}
        return replace(base, type=kind.lower(), length=lengths[kind])
    if kind in ("Number", "Currency", "Percent"):
        types = {"Number": "double", "Currency": "currency", "Percent": "percent"}
        return replace(base, type=types[kind], precision=_int(root, "precision", 18),
                       scale=_int(root, "scale", 0))
    if kind == "Checkbox":
        return replace(base, type="boolean", nillable=False, defaulted_on_create=True,
                       default=(_text(root, "defaultValue") or "false").lower() == "true")
    if kind in ("Date", "DateTime"):
        return replace(base, type=kind.lower())
    if kind in ("Picklist", "MultiselectPicklist"):
        vs = root.find(NS + "valueSet")
        definition = vs.find(NS + "valueSetDefinition") if vs is not None else None
        values = _values(definition, "value")
        default = next((v.value for v in values if v.default), None)
        return replace(base, type="picklist" if kind == "Picklist" else "multipicklist", length=255,
                       picklist=values, restricted=vs is not None and _flag(vs, "restricted"),
                       default=default, defaulted_on_create=default is not None)
    if kind in ("TextArea", "LongTextArea", "Html"):
        return replace(base, type="textarea", length=_int(root, "length", 255),
                       extra_type="richtextarea" if kind == "Html" else "plaintextarea")
    if kind in ("Lookup", "MasterDetail"):
        # metadata's relationshipName names the children; the parent path is the field's own name
        rel = _text(root, "relationshipName")
        return replace(base, type="reference", length=18, reference_to=(_text(root, "referenceTo") or "",),
                       relationship_name=name[:-3] + "__r", child_relationship=f"{rel}__r" if rel else None,
                       nillable=kind == "Lookup" and base.nillable)
    if kind == "AutoNumber":
        return replace(base, length=30, createable=False, updateable=False, defaulted_on_create=True)
    raise ValueError(f"{path}: field type {kind!r} is not supported by the sandbox")


def load_standard_value_sets(root: Path) -> dict[str, tuple[PicklistValue, ...]]:
    out: dict[str, tuple[PicklistValue, ...]] = {}
    for path in sorted((root / "main" / "default" / "standardValueSets").glob("*.standardValueSet-meta.xml")):
        root_el = ET.parse(path).getroot()  # noqa: S314 - the repo's own metadata
        out[path.name.split(".")[0]] = _values(root_el, "standardValue")
    return out


def load_schema(metadata: Path | None, prefixes: dict[str, str]) -> Schema:
    """Standard objects plus everything under ``metadata`` (``.../force-app``).

    :param prefixes: custom object name -> key prefix; missing names get the next free one
    """
    from sandbox.salesforce import ids
    from sandbox.salesforce.standard_objects import STANDARD_VALUE_SET_FIELDS, custom_object, standard_objects

    objects = standard_objects()
    root = metadata if metadata is not None else metadata_dir()
    obj_root = root / "main" / "default" / "objects"
    custom_dirs = sorted(p for p in obj_root.glob("*__c") if p.is_dir()) if obj_root.is_dir() else []
    used = set(prefixes.values())
    for obj_dir in custom_dirs:
        name = obj_dir.name
        if name not in prefixes:
            n = 0
            while ids.custom_prefix(n) in used:
                n += 1
            prefixes[name] = ids.custom_prefix(n)
            used.add(prefixes[name])
        meta = obj_dir / f"{name}.object-meta.xml"
        el = ET.parse(meta).getroot() if meta.exists() else None  # noqa: S314 - repo metadata
        name_el = el.find(NS + "nameField") if el is not None else None
        objects[name] = custom_object(
            name, _text(el, "label", name) or name, _text(el, "pluralLabel", name) or name, prefixes[name],
            name_label=_text(name_el, "label", "Name") or "Name",
            name_kind=_text(name_el, "type", "Text") or "Text",
            display_format=_text(name_el, "displayFormat"),
        )
    for obj_dir in sorted(obj_root.iterdir()) if obj_root.is_dir() else []:
        obj = objects.get(obj_dir.name)
        if obj is None:
            continue
        for path in sorted((obj_dir / "fields").glob("*.field-meta.xml")):
            f = parse_field(path)
            if f.custom:  # standard-field files only tweak UI settings; the emulator ships those
                obj.add(f)
    for set_name, values in load_standard_value_sets(root).items():
        default = next((v.value for v in values if v.default), None)
        for obj_name, field_name in STANDARD_VALUE_SET_FIELDS.get(set_name, ()):
            f = objects[obj_name].fields[field_name]
            objects[obj_name].add(replace(f, picklist=values, default=default or f.default))
    return Schema(objects)
