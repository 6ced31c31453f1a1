"""The history commands: history (every run, the rollbacks, a version's lineage, the history page) and rollback."""

import argparse
import datetime
import getpass
import json
import os
import sys
import time
from pathlib import Path

from contract import OutputLayout
from pipeline import faults
from pipeline import status as st
from pipeline.cli.build import DEFAULT_OUTPUT
from pipeline.cli.flags import UsageError

# A test's hook: seconds rollback waits between two moves, so that a test can kill it mid-way.
PAUSE_ENV = "FRAUD_PIPELINE_ROLLBACK_PAUSE"


def register(commands) -> None:
    """Adds history and rollback to the command parsers."""
    his = commands.add_parser(
        "history",
        help="every run of an output folder, the rollbacks, which version serves, and a version's lineage",
        description=(
            "One row per run of an output folder, read from ML Metadata and the runs' records (a killed run too): "
            "its time, data, drift and skew, the gate outcome (blessed, refused and which gate, data rejected and "
            "why, failed where), test PR-AUC and recall at the target precision, threshold, the version pushed, and "
            "which version serves now; the rollbacks between them. Writes DIR/history/history.html (trends across "
            "runs, a link to each run's report). With --version N: the lineage of that pushed version."
        ),
    )
    his.add_argument(
        "--output", default=DEFAULT_OUTPUT, metavar="DIR", help="the output folder (default: ./%(default)s)"
    )
    his.add_argument("--json", action="store_true", help="print the history (or the lineage) as JSON")
    his.add_argument("--version", type=int, metavar="N", help="the lineage of pushed version N instead")
    his.set_defaults(handler=_history)

    rb = commands.add_parser(
        "rollback",
        help="make an earlier pushed version the one TF Serving serves (atomically, deleting nothing)",
        description=(
            "Move every version newer than the chosen one aside into DIR/serving/.rolled-back/ (TF Serving watches "
            "only numeric folder names), newest first, one rename each: at every moment the newest visible version "
            "is a complete one, and a rollback stopped mid-way leaves a consistent folder (run it again to finish). "
            "The next run's baseline is the version then serving, and a model with the rolled-back one's training "
            "identity is not pushed again. The history records who rolled back what, when and why."
        ),
    )
    target = rb.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", type=int, metavar="VERSION", help="the version to serve")
    target.add_argument("--previous", action="store_true", help="the complete version before the one serving now")
    rb.add_argument("--reason", default="", metavar="TEXT", help="why (recorded in the history)")
    rb.add_argument(
        "--output", default=DEFAULT_OUTPUT, metavar="DIR", help="the output folder (default: ./%(default)s)"
    )
    rb.set_defaults(handler=_rollback)


def _layout(args) -> OutputLayout:
    layout = OutputLayout(str(Path(args.output).expanduser().resolve()))
    if not Path(layout.root).is_dir():
        raise UsageError(f"--output {args.output}: no such folder")
    return layout


def write_page(layout: OutputLayout) -> str:
    """The history page of an output folder, written again (run does it after each run)."""
    from pipeline import history as history_lib
    from pipeline.report import history_page

    return history_page.build(history_lib.history(layout), os.path.join(layout.root, history_page.HISTORY_DIR))


def _history(args: argparse.Namespace) -> int:
    from pipeline import history as history_lib

    layout = _layout(args)
    if args.version is not None:
        try:
            found = history_lib.lineage(layout, args.version)
        except ValueError as e:
            raise UsageError(str(e)) from e
        if args.json:
            print(json.dumps(found, indent=2, sort_keys=True))
            return st.EXIT_OK
        _print_lineage(found)
        return st.EXIT_OK
    record = history_lib.history(layout)
    page = write_page(layout)
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
        return st.EXIT_OK
    if record["metadata_error"]:
        print(f"fraud-pipeline: {record['metadata_error']}", file=sys.stderr)
    print(f"{'started':<25} {'run':<26} {'status':<13} {'rows':>7} {'frauds':>6} {'drift':>17} {'PR-AUC':>7} "
          f"{'recall':>7} {'thresh':>7} {'pushed':>11}")  # fmt: skip
    for r in record["rows"]:
        if r["kind"] == "rollback":
            print(f"{r['at']:<25} rollback by {r['by']}: version {r['from']} -> {r['to']} "
                  f"(moved aside {', '.join(map(str, r['archived']))}): {r.get('reason') or ''}")  # fmt: skip
            continue
        pushed = (r.get("pushed_version") or "-") + (" *" if r.get("serving_now") else "")
        print(
            f"{(r.get('started_at') or '-'):<25} {r['run_id']:<26} {r['status']:<13} {_n(r.get('rows')):>7} "
            f"{_n(r.get('frauds')):>6} {r.get('drift', '-'):>17} {_f(r.get('test_pr_auc')):>7} "
            f"{_f(r.get('recall_at_precision')):>7} {_f(r.get('threshold')):>7} {pushed:>11}"
        )
        if r["status"] != "completed":
            print(f"{'':<25} {r['outcome']}")
    print(f"serving now: {record['serving_now'] or 'none'} (* above); page: {page}")
    return st.EXIT_OK


def _print_lineage(found: dict) -> None:
    state = "serving now" if found["serving_now"] else ("rolled back" if found["rolled_back"] else "not serving")
    print(f"version {found['version']} ({state}): {found['path']}")
    print(f"  pushed {found['pushed_at']} by run {found['run_id'] or '(no record in this folder)'}")
    print(f"  training identity {found['identity']}")
    data = found["data"] or {}
    spans = f", spans {', '.join(data['spans'])}" if data.get("spans") else ""
    print(f"  data: {', '.join(data.get('files') or [])}{spans} (fingerprint {data.get('fingerprint')})")
    print(f"  code: {json.dumps(found['code_versions'], sort_keys=True)}")
    print(f"  hyperparameters: {json.dumps(found['hparams'], sort_keys=True)}")
    op = found["threshold"] or {}
    print(f"  threshold {_f(op.get('threshold'))} ({op.get('policy_description')})")
    baseline = found["baseline"]
    print(f"  compared with: {'version ' + baseline['serving_version'] if baseline else 'nothing (first model)'}")
    for gate in found["gates"] or []:
        base = f", baseline {_f(gate['baseline_value'])}" if gate.get("baseline_value") is not None else ""
        value = _f(gate["value"])
        print(f"  gate {gate['gate']} {gate['threshold']:g}: {gate['metric']} {value}{base} -> {gate['result']}")


def _rollback(args: argparse.Namespace) -> int:
    from components import serving

    layout = _layout(args)
    try:
        to = serving.previous_version(layout.serving_dir) if args.previous else args.to
        pause = float(os.environ.get(PAUSE_ENV, "0"))
        event = serving.rollback(
            layout.serving_dir,
            to,
            args.reason,
            getpass.getuser(),
            datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            pause=(lambda: time.sleep(pause)) if pause else None,
        )
    except serving.RollbackError as e:
        raise UsageError(str(e)) from e
    except OSError as e:
        raise faults.EnvironmentFaultError(faults.storage_sentence(e, layout.serving_dir, "the serving folder")) from e
    print(f"serving now: version {event['to']} (was {event['from']}); moved aside: "
          f"{', '.join(map(str, event['archived']))} into {serving.archive_dir(layout.serving_dir)}")  # fmt: skip
    return st.EXIT_OK


def _f(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"
