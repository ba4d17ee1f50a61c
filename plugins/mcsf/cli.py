"""``python -m mcsf``: check the mappings against both systems, or scaffold a new mapping file.

Connections come from Airflow: ``AIRFLOW_CONN_MAILCHIMP_DEFAULT`` / ``AIRFLOW_CONN_SALESFORCE_DEFAULT``
(JSON or URI) work without a metadata database; otherwise the configured secrets backends and
the metadata database are asked, as in a task.

    python -m mcsf check [--mappings DIR] [--no-create]
    python -m mcsf scaffold AUDIENCE_ID [--out FILE|-] [--force]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mcsf.config import collect_mappings, mappings_dir

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mcsf.hooks.mailchimp import MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mcsf",
        description="Check the audience mapping files against Mailchimp and Salesforce, or scaffold one.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def connections(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--mailchimp-conn-id", default="mailchimp_default", metavar="ID",
                         help="Airflow connection of the Mailchimp account (default: %(default)s)")
        sub.add_argument("--salesforce-conn-id", default="salesforce_default", metavar="ID",
                         help="Airflow connection of the Salesforce org (default: %(default)s)")

    check = commands.add_parser("check", help="validate the mapping files against Mailchimp and Salesforce")
    check.add_argument("--mappings", type=Path, metavar="DIR",
                       help="mappings directory (default: $MCSF_MAPPINGS_DIR or include/mappings)")
    check.add_argument("--no-create", action="store_true",
                       help="do not create the declared merge fields, only report them")
    connections(check)
    check.set_defaults(func=run_check)

    scaffold = commands.add_parser("scaffold", help="write a starter mapping file for one audience")
    scaffold.add_argument("audience_id", metavar="AUDIENCE_ID", help="the Mailchimp audience (list) id")
    scaffold.add_argument("--out", metavar="FILE",
                          help="where to write (default: <mappings dir>/<audience name>.yaml; - for stdout)")
    scaffold.add_argument("--force", action="store_true", help="overwrite an existing file")
    connections(scaffold)
    scaffold.set_defaults(func=run_scaffold)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; return the process exit code (0 fine, 1 problems, 2 usage)."""
    args = build_parser().parse_args(argv)
    from airflow.sdk.log import configure_logging

    configure_logging(output=sys.stderr)  # Airflow logs to stdout by default; keep stdout for results
    return int(args.func(args, out or sys.stdout))


def run_check(args: argparse.Namespace, out: TextIO) -> int:
    from mcsf.preflight import run_preflight

    mappings, problems = collect_mappings(args.mappings)
    mailchimp, salesforce = _hooks(args)
    # Nothing is written while any file is broken, even if the good ones pass.
    report = run_preflight(mappings, mailchimp, salesforce,
                           create_merge_fields=not args.no_create and not problems)
    problems = problems + report.problems
    for problem in problems:
        print(problem, file=out)
    for warning in report.warnings:
        print(f"warning: {warning}", file=out)
    report.problems = problems
    print(report.summary(), file=out)
    return 1 if problems else 0


def run_scaffold(args: argparse.Namespace, out: TextIO) -> int:
    from mcsf.hooks.mailchimp import MailchimpApiError
    from mcsf.scaffold import scaffold_mapping

    mailchimp, salesforce = _hooks(args)
    try:
        audience = mailchimp.get_list(args.audience_id)
        merge_fields = mailchimp.list_merge_fields(args.audience_id)
    except MailchimpApiError as err:
        print(f"cannot read audience {args.audience_id}: {err}", file=sys.stderr)
        return 1
    try:
        lead, contact = salesforce.field_map("Lead"), salesforce.field_map("Contact")
    except Exception as err:  # login, TLS or permission: the message says which
        print(f"cannot describe Lead and Contact: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    text = scaffold_mapping(audience, merge_fields, lead, contact)
    if args.out == "-":
        out.write(text)
        return 0
    default = mappings_dir() / f"{_slug(audience.get('name'), args.audience_id)}.yaml"
    target = Path(args.out) if args.out else default
    if target.exists() and not args.force:
        print(f"{target} exists; pass --force to overwrite it", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}: review it, then run `python -m mcsf check`", file=out)
    return 0


def _hooks(args: argparse.Namespace) -> tuple[MailchimpHook, McsfSalesforceHook]:
    from mcsf.hooks.mailchimp import MailchimpHook
    from mcsf.hooks.salesforce import McsfSalesforceHook

    return (MailchimpHook(mailchimp_conn_id=args.mailchimp_conn_id),
            McsfSalesforceHook(salesforce_conn_id=args.salesforce_conn_id))


def _slug(name: object, fallback: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", str(name or "").lower()).strip("_")
    return slug or fallback
