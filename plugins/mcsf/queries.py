"""Query Builder definitions: ``include/queries/<name>.yaml`` -> typed, validated :class:`QueryDefinition`.

A definition selects Leads or Contacts with a SOQL WHERE clause and says how the matches are
pushed into one Mailchimp audience (see ``include/queries/README.md`` for every key). Files are
read like the audience mappings (:mod:`mcsf.config`): every problem of every file is collected,
each with the file, the YAML line, the key and what to change, and a bad file never half-loads.
Checks against the live systems (fields, merge tags, does the clause run) live in
:func:`mcsf.querybuilder.check_queries`.

The WHERE clause is text only from the file, pasted into SOQL inside parentheses, so
:func:`where_problem` refuses what could escape them or end the statement early.
"""

from __future__ import annotations

import difflib
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mcsf.config import (
    ADDRESS_REQUIRED,
    ConfigError,
    ConfigProblem,
    _display,
    _explain,
    _key_path,
    _line_of,
    _load_yaml,
    check_merge_tag,
    collect_mappings,
)

QUERIES_ENV = "MCSF_QUERIES_DIR"
MAX_TAG_LENGTH = 100  # Mailchimp's limit on a tag name
_FIELD_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*){0,4}")
_FILE_STEM = re.compile(r"[A-Za-z0-9_-]{1,60}")
#: Words that end or extend a SOQL WHERE clause when they stand outside parentheses.
_CLAUSE_WORDS = ("LIMIT", "ORDER", "GROUP", "HAVING", "OFFSET", "FOR", "WITH", "SELECT", "FROM", "WHERE", "UPDATE")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def queries_dir() -> Path:
    """The definitions directory: ``$MCSF_QUERIES_DIR`` or ``<repo>/include/queries``."""
    env = os.environ.get(QUERIES_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "include" / "queries"


class SfObject(StrEnum):
    LEAD = "Lead"
    CONTACT = "Contact"


class NewStatus(StrEnum):
    """``status_if_new``: the status of a member the push creates; existing members keep theirs."""

    SUBSCRIBED = "subscribed"
    PENDING = "pending"  # Mailchimp sends a double opt-in email
    TRANSACTIONAL = "transactional"


class PushMode(StrEnum):
    ADDITIVE = "additive"  # matches are added and updated; nobody is ever taken out
    MIRROR = "mirror"  # also: members carrying the query's tag who no longer match are untagged/archived


class MirrorAction(StrEnum):
    UNTAG = "untag"
    ARCHIVE = "archive"


def where_problem(where: str) -> str | None:
    """Why ``where`` cannot be pasted into ``... WHERE ({where}) AND <window>``, or None when it can.

    Scans the clause as SOQL does (single-quoted strings with backslash escapes): every
    parenthesis must close inside the clause and none may close one it did not open (that would
    move the window condition onto a part of the clause), and nothing may end or extend the
    statement (``LIMIT``, ``ORDER BY``, ``;`` …) outside parentheses. Salesforce judges the rest.
    """
    text = where.strip()
    if not text:
        return "the WHERE clause is empty — write a condition, e.g. Email != null"
    depth, i, top_level = 0, 0, []
    while i < len(text):
        ch = text[i]
        if ch == "'":
            end = i + 1
            while end < len(text) and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                return (f"the string starting at character {i + 1} is never closed — end it with ' "
                        "(write \\' for a quote inside)")
            i = end + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return (f"the ')' at character {i + 1} closes a parenthesis the clause never opened — "
                        "balance the parentheses within the clause")
        elif ch == ";":
            return "';' is not SOQL — remove it"
        elif ch == '"':
            return 'SOQL strings use single quotes — write \'text\', not "text"'
        elif depth == 0 and (match := _WORD.match(text, i)) and (i == 0 or not _is_word(text[i - 1], ".")):
            top_level.append((match.group().upper(), i))
            i = match.end()
            continue
        i += 1
    if depth:
        return f"{depth} parenthesis{'es' if depth > 1 else ''} left open — close {'them' if depth > 1 else 'it'}"
    for word, at in top_level:
        if word in _CLAUSE_WORDS:
            if word == "WHERE" and at == 0:
                return "write only the condition, without the WHERE keyword"
            return (f"{word} at character {at + 1} would end or extend the statement — only a condition is "
                    "allowed here (mcsf adds the window and reads every match)")
    return None


def _is_word(ch: str, also: str = "") -> bool:
    return ch.isalnum() or ch == "_" or ch in also


def _cross(issues: list[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
    """Errors located below the model (``mcsf.config._explain`` expands the ``mcsf_cross`` kind)."""
    summary = "; ".join(f"{_key_path(loc)}: {msg}" for loc, msg in issues)
    return PydanticCustomError("mcsf_cross", "{summary}", {"summary": summary, "issues": issues})


class QueryDefinition(BaseModel):
    """One Query Builder push, as read from one file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: SfObject
    where: str
    audience_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,20}$")
    status_if_new: NewStatus
    tags: list[str] = []
    fields: dict[str, str] = {}
    use_audience_map: bool = Field(False, strict=True)
    mode: PushMode = PushMode.ADDITIVE
    mirror_action: MirrorAction = MirrorAction.UNTAG
    source_file: Path = Field(Path("<inline>"), exclude=True, repr=False)

    @field_validator("where")
    @classmethod
    def _check_where(cls, where: str) -> str:
        problem = where_problem(where)
        if problem:
            raise ValueError(problem)
        return where.strip()

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: list[str]) -> list[str]:
        issues, seen, out = [], {}, []
        for i, raw in enumerate(tags):
            tag = raw.strip()
            if not tag or len(tag) > MAX_TAG_LENGTH:
                issues.append(((i,), f"a tag name has 1 to {MAX_TAG_LENGTH} characters, got {len(tag)}"))
            elif tag.lower() in seen:
                issues.append(((i,), f"{tag!r} is already tags[{seen[tag.lower()]}] — remove one"))
            seen.setdefault(tag.lower(), i)
            out.append(tag)
        if issues:
            raise _cross(issues)
        return out

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        issues: list[tuple[tuple[str | int, ...], str]] = []
        fed_by: dict[str, str] = {}
        for sf_field, tag in fields.items():
            if not _FIELD_PATH.fullmatch(sf_field):
                issues.append(((sf_field,), f"{sf_field!r} is not a Salesforce field API name (e.g. FirstName, "
                               "or Account.Name for a parent's field)"))
                continue
            try:
                check_merge_tag(tag)
            except ValueError as err:
                issues.append(((sf_field,), str(err)))
                continue
            if tag in fed_by:
                issues.append(((sf_field,), f"{tag} is already fed from {fed_by[tag]} — one field per merge tag"))
            fed_by.setdefault(tag, sf_field)
        parts = {tag.partition(".")[0]: set() for tag in fed_by if "." in tag}
        for tag in fed_by:
            if "." in tag:
                parts[tag.partition(".")[0]].add(tag.partition(".")[2])
        for base, have in sorted(parts.items()):
            missing = [p for p in ADDRESS_REQUIRED if p not in have]
            if base in fed_by:
                issues.append(((), f"{base} is mapped whole and by part — map only its parts"))
            elif missing:
                issues.append(((), f"Mailchimp accepts {base} only with {', '.join(ADDRESS_REQUIRED)}: also map "
                               f"{', '.join(f'{base}.{p}' for p in missing)}"))
        if issues:
            raise _cross(issues)
        return fields

    @model_validator(mode="after")
    def _check_mode(self) -> QueryDefinition:
        issues: list[tuple[tuple[str | int, ...], str]] = []
        if self.mode is PushMode.MIRROR and not self.tags:
            issues.append((("tags",), "mirror mode needs a tag: members carrying tags[0] who stop matching lose "
                           "it — add `tags: [\"…\"]`"))
        if self.mode is PushMode.MIRROR and self.status_if_new is NewStatus.PENDING:
            issues.append((("status_if_new",), "mirror mode cannot see pending members (Mailchimp's tag listing "
                           "leaves them out), so they would never lose the tag — use subscribed or transactional, "
                           "or mode: additive"))
        if self.mode is PushMode.ADDITIVE and "mirror_action" in self.model_fields_set:
            issues.append((("mirror_action",), "mirror_action applies with mode: mirror only — remove it or "
                           "set mode: mirror"))
        if issues:
            raise _cross(issues)
        return self

    @property
    def name(self) -> str:
        """The file's stem (``partner_leads``); names the query in logs, staging and summaries."""
        return self.source_file.stem if self.source_file.name != "<inline>" else f"{self.object}-{self.audience_id}"

    @property
    def mirror_tag(self) -> str | None:
        """The tag that marks this query's members in mirror mode (``tags[0]``)."""
        return self.tags[0] if self.mode is PushMode.MIRROR and self.tags else None


def load_queries(directory: Path | None = None) -> list[QueryDefinition]:
    """Every definition of ``directory`` (default :func:`queries_dir`), sorted by file name.

    :raises ConfigError: with the problems of all files
    """
    queries, problems = collect_queries(directory)
    if problems:
        raise ConfigError(problems)
    return queries


def collect_queries(directory: Path | None = None) -> tuple[list[QueryDefinition], list[ConfigProblem]]:
    """The definitions that loaded, next to every problem (of single files and across files).

    No directory means no queries, unless ``$MCSF_QUERIES_DIR`` names one that is missing.
    """
    explicit = directory is not None or bool(os.environ.get(QUERIES_ENV))
    directory = Path(directory) if directory is not None else queries_dir()
    if not directory.is_dir():
        if not explicit:
            return [], []
        return [], [ConfigProblem(directory, None, "", f"queries directory not found — create it or point "
                                  f"{QUERIES_ENV} at the folder holding the query files")]
    queries: list[QueryDefinition] = []
    problems: list[ConfigProblem] = []
    lines_of: dict[Path, dict] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        query, file_problems, lines = parse_query_file(path)
        problems += file_problems
        if query is not None:
            queries.append(query)
            lines_of[path] = lines
    problems += _mirror_tag_clashes(queries, lines_of)
    return queries, problems


def _mirror_tag_clashes(queries: list[QueryDefinition], lines_of: dict[Path, dict]) -> list[ConfigProblem]:
    """A mirror query owns its tag in its audience: another query adding it would be undone hourly."""
    out = []
    for q in queries:
        if q.mirror_tag is None:
            continue
        for other in queries:
            if other is q or other.audience_id != q.audience_id:
                continue
            if q.mirror_tag.lower() in (t.lower() for t in other.tags):
                out.append(ConfigProblem(q.source_file, _line_of(lines_of[q.source_file], ("tags", 0)), "tags[0]",
                                         f"{q.mirror_tag!r} is this mirror query's own tag, but "
                                         f"{_display(other.source_file)} adds it too — give one of them another "
                                         "tag"))
    return out


def parse_query_file(path: Path) -> tuple[QueryDefinition | None, list[ConfigProblem], dict]:
    """One file -> (definition or None, problems, ``{key path: line}``)."""
    if not _FILE_STEM.fullmatch(path.stem):
        return None, [ConfigProblem(path, None, "", "name the file with letters, digits, _ or - only (it names the "
                                    "query in task logs and staging paths)")], {}
    try:
        data, lines, dups = _load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        return None, [ConfigProblem(path, None, "", f"cannot read the file: {err}")], {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        what = " ".join(filter(None, (err.context, err.problem)))
        return None, [ConfigProblem(path, mark.line + 1 if mark else None, "", f"YAML syntax error: {what} — fix the "
                                    "indentation or quoting (a WHERE clause is safest as a `where: |` block)")], {}
    except yaml.YAMLError as err:
        return None, [ConfigProblem(path, None, "", f"YAML error: {err} — only plain YAML values are allowed")], {}
    problems = [ConfigProblem(path, line, _key_path(loc), msg) for loc, line, msg in dups]
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}, not a mapping of keys"
        return None, [ConfigProblem(path, 1, "", f"the file is {what} — start with `object: Contact`")], lines
    if "source_file" in data:
        problems.append(ConfigProblem(path, lines.get(("source_file",)), "source_file", _unknown_key("source_file")))
    try:
        query = QueryDefinition.model_validate({**data, "source_file": path})
    except ValidationError as err:
        problems += [ConfigProblem(path, _line_of(lines, loc), _key_path(loc), msg) for loc, msg in _issues(err)]
        return None, sorted(problems, key=lambda p: p.line or 0), lines
    return (None if problems else query), problems, lines


def _issues(err: ValidationError) -> list[tuple[tuple[Any, ...], str]]:
    """``mcsf.config._explain`` with this model's unknown-key message (it knows only the mapping's keys)."""
    explained = _explain(err)
    out, at = [], 0
    for e in err.errors(include_url=False):
        size = len(e["ctx"]["issues"]) if e["type"] == "mcsf_cross" else 1
        for loc, msg in explained[at:at + size]:
            loc = tuple(part for part in loc if part != "[key]")  # a dict key's own error sits on the key
            out.append((loc, _unknown_key(str(loc[-1])) if e["type"] == "extra_forbidden" else msg))
        at += size
    return out


def _unknown_key(key: str) -> str:
    allowed = [k for k in QueryDefinition.model_fields if k != "source_file"]
    near = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown key {key!r}{hint} — allowed keys: {', '.join(allowed)}"


def problem_in(query: QueryDefinition, loc: tuple[Any, ...], message: str) -> ConfigProblem:
    """A problem located at ``loc`` (e.g. ``("fields", "Title")``) in the query's file."""
    path = query.source_file if query.source_file.name != "<inline>" else None
    try:
        lines = _load_yaml(path.read_text(encoding="utf-8"))[1] if path else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # the file changed or went away since it loaded
        lines = {}
    return ConfigProblem(path, _line_of(lines, loc), _key_path(loc), message)


def audience_mappings() -> dict[str, Any]:
    """``{audience_id: AudienceMapping}`` of the mapping files that load (problems are preflight's)."""
    mappings, _ = collect_mappings()
    return {m.audience_id: m for m in mappings}
