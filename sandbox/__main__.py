"""``python -m sandbox serve|seed``: run the emulators, or only fill their state dir."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from sandbox.controls import FaultSpecError, parse_faults


def _anchor(text: str | None) -> datetime:
    from sandbox.mailchimp.timeutil import hour_floor, parse

    try:
        return parse(text) if text else hour_floor(datetime.now(UTC))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--anchor {text!r} is not an ISO 8601 time") from None


def _faults(text: str) -> str:
    try:
        parse_faults(text)
    except FaultSpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="seed when needed, then serve Mailchimp and Salesforce",
                                description="Serve both emulators from one process. When both listen, one JSON "
                                            "line with URLs and credentials is printed on stdout.")
    seed = commands.add_parser("seed", help="only seed the state dir (no servers)")
    for sub in (serve, seed):
        sub.add_argument("--state-dir", type=Path, default=Path(".sandbox-state"),
                         help="SQLite state, kept between runs (default: ./.sandbox-state)")
        sub.add_argument("--seed", type=int, default=1, help="random seed of the generated data (default: 1)")
        sub.add_argument("--audiences", type=int, default=3, help="number of audiences (default: 3)")
        sub.add_argument("--members", type=int, default=2000, help="members per audience (default: 2000)")
        sub.add_argument("--campaigns", type=int, default=12, help="campaigns in total (default: 12)")
        sub.add_argument("--activity-events", type=int, default=20000,
                         help="open/click/bounce events across sent campaigns (default: 20000)")
        sub.add_argument("--anchor", type=str, default=None,
                         help="ISO time the seed is relative to (default: now, floored to the hour)")
        sub.add_argument("--reseed", action="store_true", help="wipe the state dir and seed again")
    serve.add_argument("--no-seed", action="store_true", help="never seed; an empty state dir gets an empty account")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    serve.add_argument("--mailchimp-port", type=int, default=0, help="0 picks a free port (default: 0)")
    serve.add_argument("--salesforce-port", type=int, default=0, help="0 picks a free port (default: 0)")
    serve.add_argument("--latency-ms", type=int, default=0, help="added to every API request (default: 0)")
    serve.add_argument("--faults", type=_faults, default=None,
                       help="fault injection, e.g. 429:0.05,500:0.01,drop:0.01,slow:0.02@1500")
    serve.add_argument("--no-salesforce", action="store_true", help="serve the Mailchimp emulator only")
    serve.add_argument("--log-level", default="INFO", help="log level on stderr (default: INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        anchor = _anchor(args.anchor)
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    logging.basicConfig(stream=sys.stderr, level=getattr(args, "log_level", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sandbox.server import Options, prepare_state, serve

    opts = Options(state_dir=args.state_dir, seed=args.seed, anchor=anchor, audiences=args.audiences,
                   members=args.members, campaigns=args.campaigns, activity_events=args.activity_events,
                   reseed=args.reseed, no_seed=getattr(args, "no_seed", False))
    if args.command == "seed":
        prepare_state(opts)
        return 0
    sf_port = None if args.no_salesforce else args.salesforce_port
    serve(opts, args.host, args.mailchimp_port, sf_port, args.latency_ms, args.faults)
    return 0


if __name__ == "__main__":
    sys.exit(main())
