"""The history commands: history (every run, the rollbacks, a version's lineage, the history page) and rollback."""

import argparse
import builtins
import datetime
import getpass
import json
import os
import sys
import time
from pathlib import Path

import contract
from contract import OutputLayout
from datasets import spec as dataset_spec
from pipeline.cli.build import DEFAULT_OUTPUT
from pipeline.cli.flags import UsageError
from pipeline.definition import faults, metadata
from pipeline.definition import status as st

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

    ver = commands.add_parser(
        "verify",
        help="check every pushed version's files against its manifest; seal a version pushed before manifests",
        description=(
            "Check each version under DIR/serving (and those a rollback moved aside) against its manifest "
            f"({contract.MANIFEST}: every file's SHA-256, written by the Pusher before the version appeared), as "
            "predict, ServingBaseline and rollback do before they load or promote a version. A version pushed "
            "before manifests has none and is refused by them: after checking it yourself, --seal N writes its "
            f"manifest from its files as they are. Exit codes: {st.EXIT_OK} every version verifies, "
            f"{st.EXIT_ENVIRONMENT} one does not (each named), {st.EXIT_USAGE} bad command line."
        ),
    )
    ver.add_argument(
        "--output", default=DEFAULT_OUTPUT, metavar="DIR", help="the output folder (default: ./%(default)s)"
    )
    ver.add_argument("--seal", type=int, metavar="N", help="write the manifest of version N, which has none")
    ver.set_defaults(handler=_verify)


def terminal_safe(text: str) -> str:
    """Text from a file (a rollback's --reason, a file name) as it may reach a terminal: control characters, which a
    terminal would obey (colours, moving the cursor, a new title), shown escaped; line ends and tabs kept."""
    return "".join(
        c if c in "\n\t" or not (ord(c) < 32 or 127 <= ord(c) < 160) else c.encode("unicode_escape").decode()
        for c in text
    )


def _print(*parts, file=None) -> None:
    """print() of what came from files (run ids, reasons, file names), control characters escaped."""
    builtins.print(*(terminal_safe(str(p)) for p in parts), file=file or sys.stdout)


def _layout(args) -> OutputLayout:
    layout = OutputLayout(str(Path(args.output).expanduser().resolve()))
    if not Path(layout.root).is_dir():
        raise UsageError(f"--output {args.output}: no such folder")
    return layout


def _history(args: argparse.Namespace) -> int:
    from pipeline.results import history as history_lib

    layout = _layout(args)
    from components.lib import serving

    for name in serving.stray_names(layout.serving_dir):
        _print(f"fraud-pipeline: {layout.serving_dir}/{name} is not a version folder (TF Serving reads ASCII digits "
               "only): ignored", file=sys.stderr)  # fmt: skip
    if args.version is not None:
        try:
            found = history_lib.lineage(layout, args.version)
        except ValueError as e:
            raise UsageError(str(e)) from e
        if args.json:
            _print(json.dumps(found, indent=2, sort_keys=True))
            return st.EXIT_OK
        _print_lineage(found)
        return st.EXIT_OK
    record = history_lib.history(layout)
    from pipeline.runners.finish import build_history_page

    page = build_history_page(layout)
    if args.json:
        _print(json.dumps(record, indent=2, sort_keys=True))
        return st.EXIT_OK
    if record["metadata_error"]:
        _print(f"fraud-pipeline: {record['metadata_error']}", file=sys.stderr)
    for problem in record.get("rollback_log_problems", []):
        _print(f"fraud-pipeline: {problem}", file=sys.stderr)
    _print(f"{'started':<25} {'run':<26} {'status':<13} {'rows':>7} {'frauds':>6} {'drift':>17} {'PR-AUC':>7} "
          f"{'recall':>7} {'thresh':>7} {'pushed':>11}")  # fmt: skip
    # A shared ML Metadata store holds the runs of several folders and machines: each run says where it ran.
    shared = metadata.shared() is not None
    for r in record["rows"]:
        if r["kind"] == "rollback":
            _print(f"{r['at']:<25} rollback by {r['by']}: version {r['from']} -> {r['to']} "
                  f"(moved aside {', '.join(map(str, r['archived']))}): {r.get('reason') or ''}")  # fmt: skip
            continue
        pushed = (r.get("pushed_version") or "-") + (" *" if r.get("serving_now") else "")
        _print(
            f"{(r.get('started_at') or '-'):<25} {r['run_id']:<26} {r['status']:<13} {_n(r.get('rows')):>7} "
            f"{_n(r.get('frauds')):>6} {r.get('drift', '-'):>17} {_f(r.get('test_pr_auc')):>7} "
            f"{_f(r.get('recall_at_precision')):>7} {_f(r.get('threshold')):>7} {pushed:>11}"
        )
        if r["status"] != "completed":
            _print(f"{'':<25} {r['outcome']}")
        if shared:
            _print(f"{'':<25} ran on {r.get('host') or '(machine unknown)'} into {r.get('output') or '(unknown)'}")
    _print(f"serving now: {record['serving_now'] or 'none'} (* above); page: {page}")
    return st.EXIT_OK


def _print_lineage(found: dict) -> None:
    state = "serving now" if found["serving_now"] else ("rolled back" if found["rolled_back"] else "not serving")
    _print(f"version {found['version']} ({state}): {found['path']}")
    _print(f"  pushed {found['pushed_at']} by run {found['run_id'] or '(no record in this folder)'}")
    _print(f"  training identity {found['identity']}")
    data = found["data"] or {}
    spans = f", spans {', '.join(data['spans'])}" if data.get("spans") else ""
    _print(f"  data: {', '.join(data.get('files') or [])}{spans} (fingerprint {data.get('fingerprint')})")
    _print(f"  code: {json.dumps(found['code_versions'], sort_keys=True)}")
    _print(f"  hyperparameters: {json.dumps(found['hparams'], sort_keys=True)}")
    op = found["threshold"] or {}
    _print(f"  threshold {_f(op.get('threshold'))} ({op.get('policy_description')})")
    baseline = found["baseline"]
    _print(f"  compared with: {'version ' + baseline['serving_version'] if baseline else 'nothing (first model)'}")
    for gate in found["gates"] or []:
        base = f", baseline {_f(gate['baseline_value'])}" if gate.get("baseline_value") is not None else ""
        value = _f(gate["value"])
        _print(f"  gate {gate['gate']} {gate['threshold']:g}: {gate['metric']} {value}{base} -> {gate['result']}")


def _rollback(args: argparse.Namespace) -> int:
    from components.lib import serving

    layout = _layout(args)
    before = serving.serving_now(layout.serving_dir)
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
    except serving.UnverifiedVersionError as e:
        raise faults.EnvironmentFaultError(str(e)) from e
    except OSError as e:
        raise faults.EnvironmentFaultError(faults.storage_sentence(e, layout.serving_dir, "the serving folder")) from e
    if event.get("resumed"):
        _print(f"finished the rollback to version {event['to']} that was stopped mid-way ({event['at']} by "
              f"{event['by']}); run the command again for another rollback")  # fmt: skip
    _print(f"serving now: version {event['serving_after']} (was {event['from']}); moved aside: "
          f"{', '.join(map(str, event['archived']))} into {serving.archive_dir(layout.serving_dir)}")  # fmt: skip
    # The columns its clients must send are those of the dataset spec the version now serving carries.
    after = serving.serving_now(layout.serving_dir)
    if before is not None and after is not None:
        old, new = serving.dataset_of_model(before[1]), serving.dataset_of_model(after[1])
        if old != new:
            _print(f"fraud-pipeline: version {after[0]} reads the dataset {new.name!r}, version {before[0]} read "
                  f"{old.name!r}: {'; '.join(dataset_spec.changes(old, new))}; its clients must send its columns",
                  file=sys.stderr)  # fmt: skip
    if event["serving_after"] != event["to"]:
        _print(f"fraud-pipeline: version {event['serving_after']} serves, not {event['to']}: a push came after the "
              "rollback", file=sys.stderr)  # fmt: skip
    return st.EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from components.lib import serving

    layout = _layout(args)
    folders = [(v, serving.join(layout.serving_dir, str(v))) for v in serving.versions(layout.serving_dir)]
    folders += serving.rolled_back(layout.serving_dir)
    if args.seal is not None:
        folder = dict(folders).get(args.seal)
        if folder is None:
            raise UsageError(f"--seal {args.seal}: no such version under {layout.serving_dir}")
        if serving.exists(serving.join(folder, contract.MANIFEST)):
            raise UsageError(f"--seal {args.seal}: {folder} has a manifest already (verify checks it)")
        serving.write_manifest(folder)
        _print(f"sealed: {folder} (its files as they are now)")
    failed = 0
    for version, folder in sorted(folders):
        try:
            serving.verify(folder)
            _print(f"{version}: verified ({folder})")
        except serving.UnverifiedVersionError as e:
            failed += 1
            _print(f"{version}: NOT verified: {e}")
    if failed:
        _print(f"fraud-pipeline: {failed} of {len(folders)} versions do not verify", file=sys.stderr)
        return st.EXIT_ENVIRONMENT
    return st.EXIT_OK


def _f(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"
