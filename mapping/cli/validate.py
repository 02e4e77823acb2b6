"""``aimc validate``: published chip figures beside the model's, with the ratio (:mod:`mapping.validate`)."""

from __future__ import annotations

import argparse

from mapping.cli.common import COMMANDS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``validate`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "validate",
        help=COMMANDS["validate"][1],
        description=(
            "Map the HERMES peak workload (64 dense 256x256 layers) on the 'hermes' preset with 1- and 4-phase "
            "reads, and roll up one ISAAC tile and chip from the 'isaac' preset's per-event energies and areas "
            "(Shafiee et al. 2016, Table 2) at full activity; print each published figure beside ours and the "
            "ratio ours/published. Sources: docs/references.md."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON instead of Markdown")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``aimc validate`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    import json

    from mapping.validate import format_table, validation_rows

    rows = validation_rows()
    if args.json:
        print(json.dumps([{"chip": r.chip, "figure": r.figure, "unit": r.unit, "published": r.published,
                           "ours": r.ours, "ratio": r.ratio, "note": r.note} for r in rows], indent=1))
    else:
        print(format_table(rows))
    return 0
