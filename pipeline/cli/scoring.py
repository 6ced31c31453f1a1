"""The scoring command: predict (transactions in bulk with a pushed model)."""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import contract
from components.lib import drift
from contract import OutputLayout
from datasets import spec as dataset_spec
from pipeline.cli.build import DEFAULT_OUTPUT, SCHEMA_PATH
from pipeline.cli.flags import UsageError, add_dataclass_flags
from pipeline.definition import faults
from pipeline.definition import status as st
from pipeline.definition.gates import GateConfig
from pipeline.definition.startup import heavy_imports

_GATES = {f.name: f for f in dataclasses.fields(GateConfig)}


ONLINE_STORE_HELP = (
    "where the history features of a dataset spec's history section are kept at serving: a postgresql:// URL "
    "(default: the spec's online_store, else an SQLite file under OUTPUT/online_store/)"
)


def _floor(name: str):
    return dataclasses.field(default=_GATES[name].default, metadata=_GATES[name].metadata)


@dataclasses.dataclass(frozen=True)
class _Floors:
    """The value gates of GateConfig, which realized performance is held to (the change gates need a baseline)."""

    min_pr_auc: float = _floor("min_pr_auc")
    at_precision: float = _floor("at_precision")
    min_recall_at_precision: float = _floor("min_recall_at_precision")


def register(commands) -> None:
    """Adds predict to the command parsers."""
    # Longer than a unit should be, on purpose: one argparse declaration a flag, in the order --help shows them.
    pred = commands.add_parser(
        "predict",
        help="score transactions in bulk with a pushed model",
        description=(
            "Score every row of a CSV file (plain or .gz) or folder of them with a model this pipeline pushed, "
            "streaming (memory stays flat as the file grows), in input order. Each row is checked against the same "
            "contract as training: the feature columns Time, V1..V28, Amount, each a number (Class is optional, "
            "not used for scoring, and kept in the output). Writes per row: its line (and file, for a folder), "
            "the key (--key), Time, Class when given, probability, decision (1 = flag as fraud), the operating "
            "threshold and the model version. Records the batch under OUTPUT/scoring/BATCH/ (scores, statistics, "
            "and the serving skew against the model's training data, which is printed; `outcomes` joins labels "
            f"with it later). Exit codes: {st.EXIT_OK} scored, {st.EXIT_SKEW} scored but a feature is past its skew "
            f"threshold (with --fail-on-skew), {st.EXIT_DATA_REJECTED} a header or row breaks the contract (without "
            f"--rejects), {st.EXIT_FAILED} any other failure, {st.EXIT_USAGE} bad command line or no model, "
            f"{st.ENVIRONMENT_HELP}."
        ),
    )
    pred.add_argument("--data", required=True, metavar="PATH", help="a CSV file (plain or .gz) or a folder of them")
    pred.add_argument(
        "--model",
        metavar="DIR",
        help="a pushed model's folder (default: the newest version under OUTPUT/serving)",
    )
    pred.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"the run output folder whose serving/ holds the pushed models and whose scoring/ records the batch "
        f"(default: ./{DEFAULT_OUTPUT})",
    )
    pred.add_argument(
        "--key",
        metavar="COLUMN",
        help="a column of the input (a transaction id) passed through to the scores and the record, to join the "
        "labels that arrive later by (the only extra column the contract then takes)",
    )
    pred.add_argument(
        "--fail-on-skew",
        action="store_true",
        help=f"exit with {st.EXIT_SKEW} (after writing the scores) when a feature of the batch is past its skew "
        "threshold; by default skew is reported, not an outage",
    )
    pred.add_argument("--no-record", action="store_true", help="do not record the batch under OUTPUT/scoring")
    pred.add_argument("--online-store", metavar="URL", help=ONLINE_STORE_HELP)
    pred.add_argument("--to", required=True, metavar="FILE", help="where to write the scores: CSV, or gzip if .gz")
    pred.add_argument(
        "--rejects",
        metavar="FILE",
        help="write rows that break the contract here (file, line, reason, row) and score the rest; without it the "
        "first such row stops the command",
    )
    pred.add_argument(
        "--batch-size",
        type=int,
        default=contract.READ_BATCH_SIZE,
        metavar="N",
        help="rows scored per call of the model (default: %(default)s)",
    )
    pred.set_defaults(handler=_predict)

    back = commands.add_parser(
        "backfill",
        help="write labelled history into the online store of the history features",
        description=(
            "Write the rows of labelled CSV files (by the serving version's dataset spec) within the reach of its "
            "history section (the longest window plus the delay before the newest row) into the online store, with "
            "their labels, so that the rows scored next get the windows training gave them. `run` does it after a "
            "push from its input; use this for a store of a team, a store moved, or a model trained elsewhere. "
            f"Exit codes: {st.EXIT_OK} written, {st.EXIT_DATA_REJECTED} a file that breaks the spec, {st.EXIT_USAGE} "
            f"bad command line or a spec without history, {st.ENVIRONMENT_HELP}."
        ),
    )
    back.add_argument("--data", required=True, metavar="PATH", help="a labelled CSV file (plain or .gz) or folder")
    back.add_argument(
        "--output", default=DEFAULT_OUTPUT, metavar="DIR", help="the output folder whose serving/ has the version"
    )
    back.add_argument("--model", metavar="DIR", help="the version whose spec reads the files (default: serving)")
    back.add_argument("--online-store", metavar="URL", help=ONLINE_STORE_HELP)
    back.set_defaults(handler=_backfill)

    out = commands.add_parser(
        "outcomes",
        help="join labels that arrived later with the recorded scores: realized precision, recall, fraud caught",
        description=(
            "Join the labels that arrived after scoring (a CSV file or folder with Class and the key the scores were "
            "recorded with, or the scored files themselves when there was no key) with every batch recorded under "
            "OUTPUT/scoring, and report per day of Time and model version: rows, labelled rows, alerts, realized "
            "precision and recall at the shipped threshold, PR-AUC, precision at the alert budget, fraud amount "
            "caught and missed. Unmatched and duplicate keys are counted and named. Writes OUTPUT/outcomes/"
            f"outcomes.json and outcomes.html. Exit codes: {st.EXIT_OK} at or above the blessing floors, "
            f"{st.EXIT_BELOW_FLOOR} realized PR-AUC or recall at the precision below them (time to retrain), "
            f"{st.EXIT_DATA_REJECTED} a label file that breaks the contract, {st.EXIT_USAGE} bad command line, "
            f"{st.ENVIRONMENT_HELP}."
        ),
    )
    out.add_argument("--labels", required=True, metavar="PATH", help="a CSV file (plain or .gz) or a folder of them")
    out.add_argument(
        "--output", default=DEFAULT_OUTPUT, metavar="DIR", help="the output folder whose scoring/ holds the records"
    )
    out.add_argument(
        "--alerts-per-day",
        type=float,
        metavar="N",
        help="the alert budget: precision at the budget is that of each day's N highest scores (default: the "
        "serving model's own budget when its threshold policy has one, else not computed)",
    )
    out.add_argument(
        "--batch", action="append", metavar="ID", help="join only this recorded batch (repeatable; default: all)"
    )
    out.add_argument("--online-store", metavar="URL", help=ONLINE_STORE_HELP + "; the labels are written into it")
    add_dataclass_flags(
        out.add_argument_group(
            "the blessing floors realized performance is held to",
            "by default the floors the scoring version was blessed with (its lineage), else the ones shown",
        ),
        _Floors,
    )
    # None: not given, so the version's own floors (_floors).
    out.set_defaults(handler=_outcomes, **{f.name: None for f in dataclasses.fields(_Floors)})


def _predict(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: give a number of rows, 1 or more")
    if not Path(args.data).exists():
        raise UsageError(f"--data {args.data}: no such file or folder")
    target = Path(args.to).expanduser().resolve().parent
    if not target.is_dir():
        raise UsageError(f"--to {args.to}: the folder {target} does not exist")
    if args.rejects and not Path(args.rejects).expanduser().resolve().parent.is_dir():
        raise UsageError(f"--rejects {args.rejects}: the folder {Path(args.rejects).parent} does not exist")
    from components.lib import serving
    from components.lib.rejection import DataRejectedError
    from pipeline.online_store.store import OnlineStoreError
    from pipeline.scoring import destination
    from pipeline.scoring.rows import headers, input_files, spec_headers

    # Before anything is imported or opened for writing: outputs that would destroy an input or each other, and
    # headers that break the contract (in a fraction of a second, not after TensorFlow's import).
    files = input_files(args.data)
    try:
        destination.check_paths(
            {"--data": [args.data, *files]}, {"--to": args.to, **({"--rejects": args.rejects} if args.rejects else {})}
        )
    except destination.PathClashError as e:
        raise UsageError(str(e)) from e
    # The columns are those of the dataset spec the model was trained by (the version carries it).
    now = None if args.model else serving.serving_now(OutputLayout(args.output).serving_dir)
    model_dir = args.model or (now[1] if now else None)
    spec = serving.dataset_of_model(str(model_dir)) if model_dir else contract.DEFAULT_DATASET
    key = args.key or spec.key or None
    if spec == contract.DEFAULT_DATASET:
        headers(files, key)
    else:
        spec_headers(files, spec, key)

    with heavy_imports():
        from pipeline.scoring import predict as predict_lib

    faults.check_writable(str(target), "the folder of --to")
    recording = None
    if not args.no_record:
        faults.check_writable(args.output)
        drift_config = dataset_spec.drift_config(contract.DEFAULT_DATASET)
        recording = predict_lib.Recording(args.output, str(SCHEMA_PATH), drift_config)
    try:
        model = Path(args.model) if args.model else predict_lib.newest_model(OutputLayout(args.output).serving_dir)
        if args.model and not (model / contract.MANIFEST).is_file():
            print(f"fraud-pipeline: {model} has no manifest ({contract.MANIFEST}): scoring with it unverified, as "
                  "--model names it; a version under serving/ without one is refused", file=sys.stderr)  # fmt: skip
        result = predict_lib.predict(
            args.data,
            model,
            args.to,
            args.rejects,
            args.batch_size,
            key=key,
            recording=recording,
            verified=not args.model,
            store=(args.output, args.online_store),
        )
    except predict_lib.ModelNotFoundError as e:
        raise UsageError(str(e)) from e
    except (serving.UnverifiedVersionError, OnlineStoreError) as e:
        raise faults.EnvironmentFaultError(str(e)) from e
    except DataRejectedError as e:
        print(f"fraud-pipeline: data rejected: {e}", file=sys.stderr)
        return st.EXIT_DATA_REJECTED
    rate = result.scored / max(result.seconds, 1e-9)
    print(f"scored {result.scored:,} rows in {result.seconds:.1f} s ({rate:,.0f} rows/s) with {result.model}")
    if args.rejects:
        print(f"rejected {result.rejected:,} rows: {args.rejects}")
    print(f"scores: {args.to}")
    if result.record is not None:
        print(f"recorded: {result.record}")
    skewed = _print_skew(result.skew)
    if skewed and args.fail_on_skew:
        print("fraud-pipeline: serving skew past its threshold (--fail-on-skew)", file=sys.stderr)
        return st.EXIT_SKEW
    return st.EXIT_OK


def _backfill(args: argparse.Namespace) -> int:
    if not Path(args.data).exists():
        raise UsageError(f"--data {args.data}: no such file or folder")
    from components.lib import serving
    from components.lib.rejection import DataRejectedError
    from pipeline.online_store.store import OnlineStore, OnlineStoreError
    from pipeline.scoring.backfill import backfill

    now = None if args.model else serving.serving_now(OutputLayout(args.output).serving_dir)
    model_dir = args.model or (now[1] if now else None)
    if model_dir is None:
        raise UsageError(f"--output {args.output}: no version serving (run `fraud-pipeline run` first, or --model)")
    spec = serving.dataset_of_model(str(model_dir))
    if not spec.history:
        raise UsageError(f"the dataset spec {spec.name!r} of {model_dir} has no history section: nothing to backfill")
    try:
        store = OnlineStore.open(spec, args.output, args.online_store)
        try:
            done = backfill(args.data, spec, store)
        finally:
            store.close()
    except OnlineStoreError as e:
        raise faults.EnvironmentFaultError(str(e)) from e
    except DataRejectedError as e:
        print(f"fraud-pipeline: data rejected: {e}", file=sys.stderr)
        return st.EXIT_DATA_REJECTED
    print(f"online store: {done.rows:,} rows and {done.labels:,} labels written ({done.where})")
    return st.EXIT_OK


def _print_skew(skew: dict | None) -> bool:
    """Prints the batch's serving skew; returns whether a feature is past its threshold."""
    if skew is None:
        return False
    if not skew["measured"]:
        print(f"serving skew: not measured ({skew['reason']})")
        return False
    top = drift.largest(skew["comparison"]["features"])
    largest = (
        f"largest {top['feature']} {top['value']:.3f} (threshold {top['threshold']:g})" if top else "nothing compared"
    )
    if skew["exceeded"]:
        print("serving skew: past its thresholds: " + "; ".join(skew["exceeded"]))
    else:
        print(f"serving skew: within thresholds; {largest}")
    for anomaly in skew["schema_anomalies"]:
        print(f"  schema (serving): {anomaly['feature']}: {anomaly['short']}")
    return bool(skew["exceeded"])


def _budget(records_output: str) -> float | None:
    """The alert budget of the model serving, when its threshold policy is one."""
    from components.lib import serving

    now = serving.serving_now(OutputLayout(records_output).serving_dir)
    if now is None:
        return None
    path = Path(now[1]) / contract.OPERATING_THRESHOLD
    if not path.is_file():
        return None
    policy = json.loads(path.read_text()).get("policy", {})
    return policy.get("alerts_per_day") if policy.get("kind") == "alerts" else None


def _floors(args: argparse.Namespace, found: tuple[dict | None, str | None]) -> None:
    """The floors not given on the command line: those the version that scored was blessed with, else GateConfig's;
    says which."""
    gates, version = found
    given = [f.name for f in dataclasses.fields(_Floors) if getattr(args, f.name) is not None]
    for field in dataclasses.fields(_Floors):
        if getattr(args, field.name) is None:
            setattr(args, field.name, float((gates or {}).get(field.name, field.default)))
    if len(given) < len(dataclasses.fields(_Floors)):
        source = f"version {version}'s blessing" if gates else "the defaults (the version records none)"
        print(
            f"floors: PR-AUC {args.min_pr_auc:g}, recall {args.min_recall_at_precision:g} at precision "
            f"{args.at_precision:g} ({source}{'; ' + ', '.join(given) + ' as given' if given else ''})"
        )


def _ranked(measures: dict) -> str:
    """What a spec's card precision adds to a line of outcomes (", card precision@100 0.1234"), else nothing."""
    found = [(m, v) for m, v in measures.items() if m.startswith("card_precision_at_")]
    return "".join(f", card precision@{m.rsplit('_', 1)[1]} {_f(v)}" for m, v in found)


def _outcomes(args: argparse.Namespace) -> int:
    if not Path(args.labels).exists():
        raise UsageError(f"--labels {args.labels}: no such file or folder")
    if args.alerts_per_day is not None and args.alerts_per_day <= 0:
        raise UsageError(f"--alerts-per-day {args.alerts_per_day:g}: give a positive number")
    from components.lib.rejection import DataRejectedError
    from pipeline.online_store.store import OnlineStoreError
    from pipeline.report import outcomes_page
    from pipeline.scoring import outcomes as outcomes_lib

    faults.check_writable(args.output)
    _floors(args, outcomes_lib.version_floors(args.output))
    budget = args.alerts_per_day if args.alerts_per_day is not None else _budget(args.output)
    try:
        record = outcomes_lib.outcomes(
            args.output, args.labels, budget, args.at_precision, args.batch, online_store=args.online_store
        )
    except OnlineStoreError as e:
        raise faults.EnvironmentFaultError(str(e)) from e
    except ValueError as e:
        if isinstance(e, DataRejectedError):
            print(f"fraud-pipeline: data rejected: {e}", file=sys.stderr)
            return st.EXIT_DATA_REJECTED
        raise UsageError(str(e)) from e
    folder = Path(args.output) / outcomes_lib.OUTCOMES_DIR
    path = outcomes_lib.write(record, folder)
    page = outcomes_page.build(record, str(folder))
    for g in record["groups"]:
        print(
            f"day {g.get('date') or format(g['day'], '>4')} model {g['model_version']}: {g['rows']:,} rows, "
            f"{g['labelled']:,} labelled, "
            f"{g['alerts']} alerts, precision {_f(g['precision'])}, recall {_f(g['recall'])}, PR-AUC {_f(g['pr_auc'])}"
            + _ranked(g)
        )
    join, overall = record["join"], record["overall"]
    print(
        f"joined {join['matched_labels']:,} of {join['labels']:,} labels with {join['scored_rows']:,} scores; "
        f"{join['labels_never_scored']} labels for rows never scored, {join['unlabelled_scores']:,} scores unlabelled, "
        f"{join['keys_scored_more_than_once']} keys scored more than once"
    )
    for key in ("labels_never_scored_named", "keys_scored_more_than_once_named", "conflicting_labels"):
        if join.get(key):
            print(f"  {key.replace('_', ' ')}: {', '.join(join[key])}")
    print(
        f"overall: PR-AUC {_f(overall['pr_auc'])}, recall {_f(overall['recall_at_precision'])} at precision "
        f"{args.at_precision:g}{_ranked(overall)}; fraud amount caught {overall['fraud_amount_caught']:,.2f}, missed "
        f"{overall['fraud_amount_missed']:,.2f}"
    )
    if "online_store" in record:
        stored = record["online_store"]
        where = f" in {stored['where']}" if "where" in stored else f" ({stored.get('reason')})"
        print(f"online store: {stored['written']:,} labels written{where}")
    print(f"outcomes: {path} (page: {page})")
    below = []
    if overall["pr_auc"] is not None and overall["pr_auc"] < args.min_pr_auc:
        below.append(f"PR-AUC {overall['pr_auc']:.4f} < {args.min_pr_auc:g}")
    recall = overall["recall_at_precision"]
    if recall is not None and recall < args.min_recall_at_precision:
        below.append(f"recall at precision {args.at_precision:g} {recall:.4f} < {args.min_recall_at_precision:g}")
    if below:
        print(f"fraud-pipeline: realized performance below the blessing floors: {'; '.join(below)}", file=sys.stderr)
        return st.EXIT_BELOW_FLOOR
    return st.EXIT_OK


def _f(value) -> str:
    return f"{value:.4f}" if value is not None else "-"
