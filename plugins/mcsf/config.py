"""Mapping files -> typed, validated settings.

One YAML file per Mailchimp audience lives in :func:`mappings_dir` (``include/mappings`` unless
``MCSF_MAPPINGS_DIR`` says otherwise); ``include/mappings/README.md`` documents every key. A bad
file never half-loads: every problem of every file is collected into one :class:`ConfigError`,
each naming the file, the YAML line, the key path (``fields[3].lead_field``) and what to change.
Checks that need the live APIs (does the merge tag exist, is the Salesforce field createable)
live in :mod:`mcsf.preflight`.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_FIELDS = 80
#: Sub-keys of a Mailchimp ``address`` merge value; map them as ``ADDRESS.city`` and so on.
ADDRESS_PARTS = ("addr1", "addr2", "city", "state", "zip", "country")
#: Mailchimp needs these parts to accept an address value, so SF->MC must send all of them.
ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
#: Salesforce fields mcsf itself owns: matching and the upsert key are not user-mappable.
RESERVED_SF_FIELDS = frozenset({"Id", "Email", "MC_Email_Key__c"})
_TAG = re.compile(r"[A-Z0-9_]{1,10}")
_SF_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_LOADER_KEYS = frozenset({"source_file"})  # set by the loader, never by the file


def mappings_dir() -> Path:
    """The mappings directory: ``$MCSF_MAPPINGS_DIR`` or ``<repo>/include/mappings``."""
    env = os.environ.get("MCSF_MAPPINGS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "include" / "mappings"


class SyncMode(StrEnum):
    ACTIVITY = "activity"  # members + campaign activity
    SUBSCRIBERS_ONLY = "subscribers_only"
    OFF = "off"


class Direction(StrEnum):
    MC_TO_SF = "mailchimp_to_salesforce"
    SF_TO_MC = "salesforce_to_mailchimp"
    BOTH = "both"


class Overwrite(StrEnum):
    ALWAYS = "always"
    IF_BLANK = "if_blank"  # only fill an empty target value (what MC4SF did)


class MergeType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    ADDRESS = "address"
    PHONE = "phone"
    DATE = "date"
    URL = "url"
    IMAGEURL = "imageurl"
    RADIO = "radio"
    DROPDOWN = "dropdown"
    BIRTHDAY = "birthday"
    ZIP = "zip"


class OptOutPolicy(StrEnum):
    ALL_AUDIENCES = "all_audiences"  # opt out in Salesforce once unsubscribed from every audience
    ANY_AUDIENCE = "any_audience"
    NEVER = "never"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _sf_name(value: str | None) -> str | None:
    if value is None:
        return None
    if not _SF_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Salesforce field API name (letters, digits, _; e.g. FirstName)")
    if value in RESERVED_SF_FIELDS:
        raise ValueError(f"{value} is matched and written by mcsf itself — map another field")
    return value


def check_merge_tag(tag: str) -> str:
    """A mappable merge tag (``FNAME``, ``ADDRESS.city``) or ValueError saying what to write instead."""
    base, dot, part = tag.partition(".")
    if base.upper() == "EMAIL":
        raise ValueError("the email address is always synced and cannot be mapped — remove this entry")
    if not _TAG.fullmatch(base):
        hint = re.sub(r"[^A-Z0-9_]", "", base.upper())[:10] or "FNAME"
        raise ValueError(f"merge tag {tag!r} must be 1–10 of A-Z, 0-9 or _ (e.g. {hint!r})")
    if dot and part not in ADDRESS_PARTS:
        raise ValueError(f"{tag!r}: after the dot use an address part: {', '.join(ADDRESS_PARTS)}")
    return tag


class FieldMap(_Model):
    """One merge tag <-> Lead and/or Contact field. ``ADDRESS.city`` names one part of an address."""

    merge_tag: str
    lead_field: str | None = None
    contact_field: str | None = None
    direction: Direction = Direction.MC_TO_SF
    overwrite: Overwrite = Overwrite.IF_BLANK

    @field_validator("merge_tag")
    @classmethod
    def _check_tag(cls, tag: str) -> str:
        return check_merge_tag(tag)

    _check_fields = field_validator("lead_field", "contact_field")(_sf_name)

    @model_validator(mode="after")
    def _needs_target(self) -> FieldMap:
        if self.lead_field is None and self.contact_field is None:
            raise ValueError("add a lead_field, a contact_field or both")
        return self

    @property
    def base_tag(self) -> str:
        """``ADDRESS`` for ``ADDRESS.city``; the tag itself otherwise."""
        return self.merge_tag.partition(".")[0]

    @property
    def address_part(self) -> str | None:
        """``city`` for ``ADDRESS.city``; None for a plain tag."""
        return self.merge_tag.partition(".")[2] or None

    @property
    def to_salesforce(self) -> bool:
        return self.direction in (Direction.MC_TO_SF, Direction.BOTH)

    @property
    def to_mailchimp(self) -> bool:
        return self.direction in (Direction.SF_TO_MC, Direction.BOTH)


class MergeFieldDecl(_Model):
    """A merge field preflight creates in the audience when it is missing (POST merge-fields)."""

    tag: str
    name: str = Field(min_length=1, max_length=100)
    type: MergeType
    required: bool = Field(False, strict=True)
    options: dict[str, Any] | None = None

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, tag: str) -> str:
        if tag == "EMAIL" or not _TAG.fullmatch(tag):
            raise ValueError(f"tag {tag!r} must be 1–10 upper-case letters, digits or _ and not EMAIL")
        return tag

    def as_api_body(self) -> dict[str, Any]:
        """The body of ``POST /lists/{id}/merge-fields``."""
        body: dict[str, Any] = {"tag": self.tag, "name": self.name, "type": str(self.type)}
        body["required"] = self.required
        if self.options:
            body["options"] = dict(self.options)
        return body


class LeadSettings(_Model):
    """Whether unmatched subscribers become Leads, and what those Leads get by default."""

    create: bool = Field(False, strict=True)
    defaults: dict[str, str] = {"Company": "[not provided]"}
    lead_source: str = "Mailchimp"
    status: str | None = None

    @field_validator("defaults", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: Any) -> Any:
        # YAML turns `NumberOfEmployees: 50` into an int; Salesforce takes text for every field type.
        if not isinstance(value, dict):
            return value
        def text(v: Any) -> Any:
            if isinstance(v, bool):
                return str(v).lower()
            return v if v is None or isinstance(v, str | list | dict) else str(v)

        return {k: text(v) for k, v in value.items()}

    @field_validator("defaults")
    @classmethod
    def _check_default_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _sf_name(name)
        return value


class AudienceMapping(_Model):
    """Everything mcsf does for one audience, as read from one mapping file."""

    audience_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,20}$")
    name: str | None = None
    sync_mode: SyncMode = SyncMode.SUBSCRIBERS_ONLY
    segment_id: int | None = Field(None, strict=True, ge=1)
    leads: LeadSettings = LeadSettings()
    activity_retention_days: int | None = Field(None, strict=True, ge=1)
    opt_out_policy: OptOutPolicy = OptOutPolicy.ALL_AUDIENCES
    max_reject_share: float = Field(0.10, strict=True, ge=0.0, le=1.0)
    fields: list[FieldMap] = Field([], max_length=MAX_FIELDS)
    create_merge_fields: list[MergeFieldDecl] = []
    source_file: Path = Field(Path("<inline>"), exclude=True, repr=False)
    # A Query Builder definition (SF->MC pushes) may join here later as its own model.

    @model_validator(mode="after")
    def _cross_checks(self) -> AudienceMapping:
        issues = cross_field_issues(dict(enumerate(self.fields)), dict(enumerate(self.create_merge_fields)))
        if issues:
            summary = "; ".join(f"{_key_path(loc)}: {msg}" for loc, msg in issues)
            raise PydanticCustomError("mcsf_cross", "{summary}", {"summary": summary, "issues": issues})
        return self

    @property
    def label(self) -> str:
        """A short human name: the file's stem, else the audience name, else its id."""
        if self.source_file.name != "<inline>":
            return self.source_file.stem
        return self.name or self.audience_id

    def fields_for(self, direction_to_sf: bool) -> list[FieldMap]:
        """The field maps that write Salesforce (True) or Mailchimp (False)."""
        return [f for f in self.fields if (f.to_salesforce if direction_to_sf else f.to_mailchimp)]

    def lead_fields(self) -> dict[str, str]:
        """``{merge_tag: Lead field}`` for the fields written to Salesforce."""
        return {f.merge_tag: f.lead_field for f in self.fields_for(True) if f.lead_field}

    def contact_fields(self) -> dict[str, str]:
        """``{merge_tag: Contact field}`` for the fields written to Salesforce."""
        return {f.merge_tag: f.contact_field for f in self.fields_for(True) if f.contact_field}


Loc = tuple[str | int, ...]
_M = TypeVar("_M", bound=BaseModel)


def cross_field_issues(
    fields: dict[int, FieldMap], decls: dict[int, MergeFieldDecl]
) -> list[tuple[Loc, str]]:
    """Checks that span entries: duplicate tags, one Salesforce field fed twice, address parts.

    Takes ``{index: entry}`` so the loader can also run it on the entries that did validate
    when others did not, and report everything in one go.
    """
    issues: list[tuple[Loc, str]] = []
    seen_tags: dict[str, int] = {}
    writers: dict[tuple[str, str], int] = {}
    for i, f in fields.items():
        if f.merge_tag in seen_tags:
            first = seen_tags[f.merge_tag]
            issues.append((("fields", i, "merge_tag"),
                           f"{f.merge_tag} is already mapped in fields[{first}] — use one entry per tag"))
            continue
        seen_tags[f.merge_tag] = i
        if f.address_part and f.base_tag in seen_tags:
            issues.append((("fields", i, "merge_tag"),
                           f"{f.base_tag} is mapped whole and by part — map only its parts"))
        targets = (("Lead", "lead_field", f.lead_field), ("Contact", "contact_field", f.contact_field))
        for obj, key, field in targets:
            if field and f.to_salesforce:
                if (obj, field) in writers:
                    j = writers[obj, field]
                    issues.append((("fields", i, key), f"{obj}.{field} is already written from "
                                   f"{fields[j].merge_tag} (fields[{j}]) — map it from one merge tag only"))
                writers.setdefault((obj, field), i)
    to_mc = [f for f in fields.values() if f.to_mailchimp and f.address_part]
    for tag in sorted({f.base_tag for f in to_mc}):
        parts = {f.address_part for f in to_mc if f.base_tag == tag}
        missing = [p for p in ADDRESS_REQUIRED if p not in parts]
        if missing:
            issues.append((("fields",), f"Mailchimp accepts {tag} only with {', '.join(ADDRESS_REQUIRED)}: "
                           f"also map {', '.join(f'{tag}.{p}' for p in missing)} towards Mailchimp"))
    declared: dict[str, int] = {}
    for i, d in decls.items():
        if d.tag in declared:
            issues.append((("create_merge_fields", i, "tag"),
                           f"{d.tag} is also in create_merge_fields[{declared[d.tag]}] — remove one"))
        declared.setdefault(d.tag, i)
    return issues


def _valid_entries(raw: Any, model: type[_M]) -> dict[int, _M]:
    """The entries of a raw YAML list that validate on their own (for cross checks after errors)."""
    out: dict[int, _M] = {}
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        with contextlib.suppress(ValidationError):
            out[i] = model.model_validate(item)
    return out


class ConfigProblem(NamedTuple):
    """One thing wrong with the configuration, and how to fix it."""

    file: Path | None
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = _display(self.file) if self.file else ""
        if where and self.line:
            where += f":{self.line}"
        return ": ".join(part for part in (where, self.key, self.message) if part)


class ConfigError(Exception):
    """Raised with every problem found, so a user fixes them all in one go."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_mapping(path: Path) -> AudienceMapping:
    """Load and validate one mapping file; raise :class:`ConfigError` listing all its problems."""
    mapping, problems, _ = _parse_file(Path(path))
    if problems or mapping is None:
        raise ConfigError(problems)
    return mapping


def load_mappings(directory: Path | None = None, *, include_off: bool = True) -> list[AudienceMapping]:
    """Load every ``*.yaml``/``*.yml`` file of ``directory`` (sorted by name).

    :param directory: defaults to :func:`mappings_dir`
    :param include_off: False drops audiences whose ``sync_mode`` is ``off``
    :raises ConfigError: with the problems of all files, including an audience configured twice
    """
    mappings, problems = collect_mappings(directory)
    if problems:
        raise ConfigError(problems)
    return [m for m in mappings if include_off or m.sync_mode is not SyncMode.OFF]


def collect_mappings(directory: Path | None = None) -> tuple[list[AudienceMapping], list[ConfigProblem]]:
    """Like :func:`load_mappings`, but return the good files' mappings next to all problems.

    ``python -m mcsf check`` uses it to run the API checks on the files that did load.
    """
    directory = Path(directory) if directory is not None else mappings_dir()
    if not directory.is_dir():
        return [], [ConfigProblem(directory, None, "", "mappings directory not found — create it or set "
                                  "MCSF_MAPPINGS_DIR to the folder holding the audience files")]
    problems: list[ConfigProblem] = []
    mappings: list[AudienceMapping] = []
    first_file: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        mapping, file_problems, lines = _parse_file(path)
        problems += file_problems
        if mapping is None:
            continue
        if mapping.audience_id in first_file:
            other = _display(first_file[mapping.audience_id])
            problems.append(ConfigProblem(
                path, lines.get(("audience_id",)), "audience_id",
                f"audience {mapping.audience_id} is also configured in {other} — keep one file per audience"))
            continue
        first_file[mapping.audience_id] = path
        mappings.append(mapping)
    return mappings, problems


def problem_at(mapping: AudienceMapping, loc: Loc, message: str) -> ConfigProblem:
    """A problem located at ``loc`` (e.g. ``("fields", 3, "lead_field")``) in the mapping's file."""
    path = mapping.source_file
    try:
        lines = _file_lines(path, path.stat().st_mtime_ns)
    except OSError:  # an inline mapping, or the file is gone: no line to point at
        return ConfigProblem(None, None, _key_path(loc), message)
    return ConfigProblem(path, _line_of(lines, loc), _key_path(loc), message)


@functools.lru_cache(maxsize=256)
def _file_lines(path: Path, mtime_ns: int) -> dict[Loc, int]:
    try:
        return _load_yaml(path.read_text(encoding="utf-8"))[1]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}


# --- parsing: YAML -> (data, line index) -> model, with every error located ---------------------


def _parse_file(path: Path) -> tuple[AudienceMapping | None, list[ConfigProblem], dict[Loc, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, [ConfigProblem(path, None, "", f"cannot read the file: {err}")], {}
    try:
        data, lines, dup_problems = _load_yaml(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = " ".join(filter(None, (err.context, err.problem)))
        fix = ("remove the `!!` tag: only plain YAML values are allowed"
               if isinstance(err, yaml.constructor.ConstructorError) else "fix the indentation or quoting")
        return None, [ConfigProblem(path, mark.line + 1 if mark else None, "",
                                    f"YAML syntax error: {what}{where} — {fix}")], {}
    except yaml.YAMLError as err:
        return None, [ConfigProblem(path, None, "", f"YAML error: {err}")], {}
    problems = [ConfigProblem(path, line, _key_path(loc), msg) for loc, line, msg in dup_problems]
    if data is None:
        return None, [ConfigProblem(path, 1, "", "the file is empty — start with `audience_id: <id>`")], {}
    if not isinstance(data, dict):
        return None, [ConfigProblem(path, 1, "", "the file must be a mapping of keys (`audience_id: …`, "
                                    f"`fields: …`), not a {type(data).__name__}")], lines
    for key in _LOADER_KEYS & data.keys():
        problems.append(ConfigProblem(path, lines.get((key,)), key, _unknown_key_message(key, ())))
    try:
        mapping = AudienceMapping.model_validate({**data, "source_file": path})
    except ValidationError as err:
        issues = _explain(err)
        if not any(e["type"] == "mcsf_cross" for e in err.errors()):  # cross checks did not get to run
            issues += cross_field_issues(_valid_entries(data.get("fields"), FieldMap),
                                         _valid_entries(data.get("create_merge_fields"), MergeFieldDecl))
        problems += [ConfigProblem(path, _line_of(lines, loc), _key_path(loc), msg) for loc, msg in issues]
        return None, sorted(problems, key=lambda p: p.line or 0), lines
    return (None if problems else mapping), problems, lines


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: ``sync_mode: off`` must stay the string "off"."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's own class attribute, copied without bools
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def _load_yaml(text: str) -> tuple[Any, dict[Loc, int], list[tuple[Loc, int, str]]]:
    """``yaml.safe_load`` plus a ``{key path: line}`` index and duplicate-key findings."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    dups: list[tuple[Loc, int, str]] = []
    if node is not None:
        _index(node, (), lines, dups)
    return data, lines, dups


def _index(node: yaml.Node, loc: Loc, lines: dict[Loc, int], dups: list[tuple[Loc, int, str]]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if (*loc, key) in lines:
                dups.append(((*loc, key), line, f"key given twice (first on line {lines[(*loc, key)]}) "
                             "— YAML keeps only the last; remove one"))
                continue
            lines[(*loc, key)] = line
            _index(value_node, (*loc, key), lines, dups)  # setdefault keeps the key's own line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*loc, i), lines, dups)


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):  # the longest located prefix: a missing key -> its parent
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _key_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(err: ValidationError) -> list[tuple[Loc, str]]:
    """Turn pydantic errors into ``(location, what to change)`` pairs a YAML author understands."""
    out: list[tuple[Loc, str]] = []
    for e in err.errors(include_url=False):
        loc: Loc = tuple(e["loc"])
        kind, ctx, value = e["type"], e.get("ctx", {}), e.get("input")
        if kind == "mcsf_cross":
            out += [((*loc, *sub), msg) for sub, msg in ctx["issues"]]
            continue
        if kind == "extra_forbidden":
            msg = _unknown_key_message(str(loc[-1]), loc[:-1])
        elif kind == "enum":
            msg = f"{value!r} is not a valid choice — use one of {ctx['expected']}"
        elif kind == "missing":
            msg = f"required key missing — add `{loc[-1]}: …`"
        elif kind == "too_long" and loc == ("fields",):
            extra = ctx["actual_length"] - MAX_FIELDS
            msg = f"{ctx['actual_length']} fields mapped, at most {MAX_FIELDS} allowed — remove {extra}"
        elif kind == "string_pattern_mismatch" and loc == ("audience_id",):
            msg = f"{value!r} is not a Mailchimp audience id (e.g. 'a1b2c3d4e5', from Audience → Settings)"
        elif kind == "value_error":
            msg = str(ctx.get("error", e["msg"]))
        else:
            msg = f"{e['msg'][0].lower()}{e['msg'][1:]}, got {value!r}" + _type_hint(kind, value)
        out.append((loc, msg))
    return out


def _type_hint(kind: str, value: Any) -> str:
    if isinstance(value, str) and kind in ("int_type", "float_type", "bool_type"):
        with contextlib.suppress(yaml.YAMLError):
            if type(yaml.load(value, Loader=_Loader)).__name__[:3] == kind[:3]:  # noqa: S506 - safe loader
                return " — write it without quotes"
    if kind == "string_type" and isinstance(value, int | float):
        return " — put it in quotes (YAML reads it as a number and drops leading zeros)"
    hints = {"list_type": " — write a YAML list (`- …` lines)", "dict_type": " — write `key: value` lines",
             "model_type": " — write `key: value` lines", "bool_type": " — write true or false"}
    return hints.get(kind, "")


def _unknown_key_message(key: str, parent: Loc) -> str:
    allowed = [k for k in _model_at(parent).model_fields if k not in _LOADER_KEYS]
    near = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown key {key!r}{hint} — allowed keys: {', '.join(allowed)}"


def _model_at(loc: Loc) -> type[BaseModel]:
    """The model that validates the mapping found at ``loc`` (``fields[3]`` -> FieldMap)."""
    model: type[BaseModel] = AudienceMapping
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        candidates = [annotation, *get_args(annotation)]
        model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    return model


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
