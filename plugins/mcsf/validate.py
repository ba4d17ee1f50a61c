"""Row-level validation with Great Expectations: a structured verdict, never an exception.

A suite is built from :class:`Rule` objects (which the pipeline derives from the mapping and the
Salesforce describe) and run on the frame's columns in one ephemeral GX context with
``result_format=COMPLETE``, failing rows reported by position, so every failing row gets the
reason of every rule it broke. Values never leave this module: the verdict carries row numbers
and reasons, not the offending values (which may be emails).
Only the caller decides whether a verdict fails the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterable

# What Salesforce accepts in an Email field: ASCII local part and a dotted domain, no spaces.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL_REGEX = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$"


@dataclass(frozen=True)
class Rule:
    """One expectation on one column and the reason a failing row gets.

    :param kind: ``email`` | ``not_null`` | ``max_length`` | ``in_set`` | ``unique``
    :param reason: text for the analyst, e.g. ``"Lead.FirstName longer than 40 characters"``
    """

    column: str
    kind: str
    reason: str
    value: Any = None


@dataclass
class Verdict:
    passed: pd.DataFrame
    rejected: pd.DataFrame  # the rejected rows plus ``_reason`` ("; "-joined)
    failures: Counter[str] = field(default_factory=Counter)  # reason -> rows

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.rejected)

    @property
    def reject_share(self) -> float:
        return len(self.rejected) / self.total if self.total else 0.0

    def top_reasons(self, n: int = 5) -> list[tuple[str, int]]:
        return self.failures.most_common(n)


def _expectation(rule: Rule, column: str) -> Any:
    """The GX expectation of ``rule`` on ``column`` (the rule's column, or what stands for it)."""
    import great_expectations as gx

    e = gx.expectations
    if rule.kind == "email":
        return e.ExpectColumnValuesToMatchRegex(column=column, regex=EMAIL_REGEX)
    if rule.kind == "not_null":
        return e.ExpectColumnValuesToNotBeNull(column=column)
    if rule.kind == "max_length":
        return e.ExpectColumnValueLengthsToBeBetween(column=column, max_value=int(rule.value))
    if rule.kind == "in_set":
        return e.ExpectColumnValuesToBeInSet(column=column, value_set=sorted(rule.value))
    if rule.kind == "unique":
        return e.ExpectColumnValuesToBeUnique(column=column)
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def validate_rows(frame: pd.DataFrame, rules: Iterable[Rule], *, reasons_column: str | None = "_reasons") -> Verdict:
    """Split ``frame`` into rows that pass every rule and rows rejected with their reasons.

    :param reasons_column: a column of reasons found earlier (e.g. while mapping); a non-empty
        value rejects the row too
    """
    rules = [r for r in rules if r.column in frame.columns]
    reasons: dict[int, list[str]] = {}
    failures: Counter[str] = Counter()
    if reasons_column and reasons_column in frame.columns:
        texts = frame[reasons_column].to_numpy(dtype=object)
        # Only rows that carry a reason are visited (a million rows, a few hundred reasons).
        given = pd.Series(texts, dtype=object).astype("string").str.len().gt(0).fillna(False).to_numpy(dtype=bool)
        for pos in np.flatnonzero(given).tolist():
            text = texts[pos]
            if isinstance(text, str):
                reasons.setdefault(pos, []).extend(text.split("; "))
                for part in text.split("; "):
                    failures[_general(part)] += 1
    if rules and not frame.empty:
        for rule, rows in zip(rules, _run_suite(frame, rules), strict=True):
            for pos in rows:
                reasons.setdefault(pos, []).append(rule.reason)
            if rows:
                failures[rule.reason] += len(rows)
    bad = pd.Series(False, index=range(len(frame)))
    bad[list(reasons)] = True
    positions = bad.to_numpy()
    rejected = frame[positions].copy()
    rejected["_reason"] = ["; ".join(reasons[p]) for p in sorted(reasons)]
    return Verdict(frame[~positions], rejected, failures)


def _general(reason: str) -> str:
    """A reason without the row's value, for counting (``merge field X -> Y: '…' is not a date``)."""
    head, sep, _ = reason.partition(": ")
    return f"{head}: invalid value" if sep else reason


def _run_suite(frame: pd.DataFrame, rules: list[Rule]) -> list[list[int]]:
    """Run the rules as GX expectations over ``frame``; returns the failing row positions per rule.

    Performance (a million rows in about two seconds): a value rule's verdict depends on the value
    alone, so a column whose values repeat (names, statuses, phones) is checked on its *distinct*
    values and failing values are mapped back to rows; ``unique`` runs on the column's integer
    codes. GX's fixed cost per validation run is paid at most twice, for two frames: one with a
    row per row of ``frame`` (columns whose values mostly differ, e.g. emails, and the codes) and
    one of distinct values (each column padded with nulls to the longest; padding is ignored).
    GX reports failing rows by the frames' own index, which is the position.
    """
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    frames: dict[str, dict[str, pd.Series]] = {"rows": {}, "values": {}}  # frame -> GX column -> data
    # per rule: its frame, its GX column and, for distinct values, each row's position among them
    checks: list[tuple[str, str, np.ndarray | None]] = [("", "", None)] * len(rules)
    by_column: dict[str, list[int]] = {}
    for i, rule in enumerate(rules):
        by_column.setdefault(rule.column, []).append(i)
    for column, indexes in by_column.items():
        series = frame[column].reset_index(drop=True)
        unique_rules = [i for i in indexes if rules[i].kind == "unique"]
        value_rules = [i for i in indexes if rules[i].kind != "unique"]
        many = len(pd.unique(series.iloc[:10_000].to_numpy(dtype=object))) > 5_000  # emails, keys: no repeats
        if unique_rules or not many:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            codes = np.asarray(codes)
        if value_rules:
            if many:  # every row as it is
                where, values, back = "rows", series, None
            else:  # each distinct value once; nulls stay visible to not_null as one null value
                where, back = "values", np.where(codes < 0, len(uniques), codes)
                values = pd.Series([*np.asarray(uniques, dtype=object), None], dtype=object)
            if pd.api.types.infer_dtype(values, skipna=True) == "string":
                values = values.astype("string")  # GX's string checks run in pyarrow then
            frames[where][column] = values
            for i in value_rules:
                checks[i] = (where, column, back)
        if unique_rules:
            keys = pd.array(codes, dtype="Int64")
            keys[codes < 0] = pd.NA  # missing keys are skipped, as GX skips nulls
            name = f"{column} (codes)" if column in frames["rows"] else column
            frames["rows"][name] = pd.Series(keys)
            for i in unique_rules:
                checks[i] = ("rows", name, None)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    source = context.data_sources.add_pandas("mcsf")
    out: list[list[int]] = [[] for _ in rules]
    for where, columns in frames.items():
        if not columns:
            continue
        length = max(len(values) for values in columns.values())
        data = pd.DataFrame({name: values.reindex(range(length)) for name, values in columns.items()})
        mine = [i for i, check in enumerate(checks) if check[0] == where]
        found = _run(gx, context, source, where, data, [(rules[i], checks[i][1]) for i in mine])
        for i, positions in zip(mine, found, strict=True):
            _, name, back = checks[i]
            positions = positions[positions < len(columns[name])]  # not the padding
            out[i] = positions.tolist() if back is None else np.flatnonzero(np.isin(back, positions)).tolist()
    return out


#: Every failing row by the frame's index; not the values (they may be emails), nor a query text of them.
RESULT_FORMAT = {"result_format": "COMPLETE", "exclude_unexpected_values": True, "return_unexpected_index_query": False}


def _run(gx: Any, context: Any, source: Any, name: str, data: pd.DataFrame,
         checks: list[tuple[Rule, str]]) -> list[np.ndarray]:
    """One GX validation of ``(rule, column of data)`` pairs; the failing positions per pair, sorted."""
    definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=[_expectation(rule, column)
                                                                           for rule, column in checks]))
    run = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=definition, suite=suite))
    result = run.run(batch_parameters={"dataframe": data}, result_format=RESULT_FORMAT)
    by_id = {outcome.expectation_config.id: outcome for outcome in result.results}
    outcomes = [by_id[expectation.id] for expectation in suite.expectations]
    return [np.unique(np.asarray([] if outcome.success else outcome.result.get("unexpected_index_list") or [],
                                 dtype=np.int64)) for outcome in outcomes]


TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "combobox"}
SUBSCRIBER_STATUSES = {"subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived", "deleted"}


def subscriber_rules(mapping: Any, describes: dict[str, dict[str, dict[str, Any]]]) -> list[Rule]:
    """The suite for mapped subscriber rows, from the mapping and the Salesforce describe.

    :param mapping: the audience's :class:`mcsf.config.AudienceMapping`
    :param describes: ``{"Lead": {field: describe}, "Contact": {...}}``
    """
    rules = [
        Rule("Email__c", "not_null", "no email address"),
        Rule("Email__c", "email", "invalid email address (Salesforce takes only ASCII addresses with a dotted domain)"),
        # Mailchimp takes addresses up to 255 characters; Salesforce's Email fields hold 80.
        Rule("Email__c", "max_length", "email address longer than the 80 characters Salesforce allows", 80),
        Rule("MC_Subscriber_Key__c", "unique", "the same member twice in one extract"),
        Rule("Status__c", "in_set", "unknown member status", SUBSCRIBER_STATUSES),
    ]
    for object_name, fields in (("Lead", mapping.lead_fields()), ("Contact", mapping.contact_fields())):
        for tag, name in fields.items():
            describe = describes.get(object_name, {}).get(name)
            if not describe:
                continue
            column, target = f"{object_name}.{name}", f"{object_name}.{name}"
            kind = describe.get("type")
            if kind in TEXT_TYPES and describe.get("length"):
                rules.append(Rule(column, "max_length",
                                  f"merge field {tag} longer than {target} allows ({describe['length']})",
                                  describe["length"]))
            if kind == "email":
                rules.append(Rule(column, "email", f"merge field {tag} is not an email {target} accepts"))
            if kind == "picklist" and describe.get("restrictedPicklist"):
                allowed = {p["value"] for p in describe.get("picklistValues", []) if p.get("active", True)}
                rules.append(Rule(column, "in_set", f"merge field {tag} is not a value of the {target} picklist",
                                  allowed))
    return rules
