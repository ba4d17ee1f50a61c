"""What the DAG files read from the environment when they are parsed.

Light on purpose: the DAG processor parses the DAG files often, and importing the ``mcsf``
package would load Arrow (and, through it, pandas-sized imports) every time. So this module
imports nothing but the standard library. A bad value raises at parse time, naming the variable:
Airflow shows the error on the DAG's import-error banner.
"""

from __future__ import annotations

import os

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})


def catchup() -> bool:
    """``MCSF_CATCHUP``: whether the scheduler runs the intervals missed since ``start_date`` (default false)."""
    raw = os.environ.get("MCSF_CATCHUP", "").strip().lower()
    if raw not in TRUE | FALSE:
        raise ValueError(f"MCSF_CATCHUP={raw!r}: set true or false")
    return raw in TRUE


def audiences_at_once() -> int | None:
    """``MCSF_AUDIENCES_AT_ONCE``: how many audiences' tasks of one step run at once in a run
    (unset: all of them, as Airflow runs a mapped task's instances).

    Each audience's task holds its own frames, so a worker needs about that many tasks' memory at
    once: for a first sync of 1,000,000 members over 3 audiences, 3.4 GB side by side against
    1.5 GB one at a time, which takes longer (docs/deploy.md, "Memory").
    Extracts run one at a time whatever this says (Mailchimp's 10 connections).
    """
    raw = os.environ.get("MCSF_AUDIENCES_AT_ONCE", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"MCSF_AUDIENCES_AT_ONCE={raw!r}: set a whole number of at least 1, or unset it to run "
                         "every audience's tasks at once")
    return int(raw)
