"""The `fraud-pipeline` command: builds the typed config from flags and hands it to a runner."""

import argparse
import contextlib
import dataclasses
import glob
import json
import os
import sys
import warnings
from pathlib import Path

import contract
from components import serving, spans
from contract import OutputLayout
from pipeline import beam_workers, fingerprint
from pipeline import config as cfg
from pipeline import gates as gates_lib
from pipeline import status as st
from pipeline.config import COMPARE_PIPELINE_NAME, DATA_ROOT_PARAMETER, TARGETS, PipelineConfig
from pipeline.gates import DataMinimums, GateConfig
from trainer.hparams import CANDIDATES, STRATEGIES, HParams, ThresholdPolicy
from trainer.tuning import SEARCH_SPACE

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_PATH = PACKAGE_DIR / "schema.pbtxt"
# The drift and skew thresholds, reviewed like the schema.
DRIFT_CONFIG_PATH = PACKAGE_DIR / "drift.pbtxt"
# The embedded sample lives at the top of the source tree (the project installs editable).
DEFAULT_DATA = PACKAGE_DIR.parent / "data" / "creditcard_sample.csv.gz"
DEFAULT_OUTPUT = "output"
DEFAULT_COMPARE_OUTPUT = "output/compare"
CSV_GLOB = "*.csv*"
# Where the Dockerfile installs the project inside the pipeline image.
IMAGE_PROJECT_DIR = "/pipeline"
IMAGE_SCHEMA_PATH = f"{IMAGE_PROJECT_DIR}/pipeline/schema.pbtxt"
# The source tree this process runs from: what remote Beam workers of a local run install (--setup_file).
SOURCE_SETUP = PACKAGE_DIR.parent / "setup.py"

_HPARAM_HELP = {
    "units": "width of the hidden layer",
    "dropout": "dropout rate after the hidden layer",
    "learning_rate": "Adam learning rate",
    "batch_size": "examples per training step",
    "max_epochs": "epochs at most (early stopping usually ends sooner)",
    "patience": "epochs without a better eval PR-AUC before stopping; the best weights are kept",
    "strategy": "baseline: no reweighting; class_weight: weigh each class to half the loss; "
    "oversample: balanced batches of the train split",
    "seed": "random seed; the same seed and data give the same model",
    "layers": "hidden layers, each --units wide with dropout after it",
    "batch_norm": "batch normalisation after each hidden layer",
    "time_of_day": "the time of day (sine and cosine of Time mod 24 h) as two more model inputs",
    "ensemble": "train this many members (seeds seed, seed+1, ...) and average their probabilities",
}


_GATE_HELP = {
    "min_pr_auc": "bless only if the test PR-AUC is at least this",
    "at_precision": "the precision at which recall_at_precision is measured",
    "min_recall_at_precision": "bless only if recall at that precision is at least this",
    "max_pr_auc_drop": "bless only if PR-AUC is at most this much below the baseline's (the model serving now)",
    "max_recall_drop": "bless only if recall_at_precision is at most this much below the baseline's",
}


_DATA_HELP = {
    "min_train_frauds": "stop before Transform (exit 3) when the train split holds fewer frauds",
    "min_eval_frauds": "likewise for the eval split (early stopping and the operating threshold need frauds)",
    "min_test_frauds": "likewise for the test split (the Evaluator needs frauds to measure)",
}
# Where `submit --target kubeflow` reads a bearer token from, never from the command line.
TOKEN_ENV = "FRAUD_PIPELINE_KFP_TOKEN"


def _add_flags(group, cls, helps: dict) -> None:
    """One --flag per field of a config dataclass, typed and defaulted from it."""
    defaults = cls()
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool:
            # --time-of-day / --no-time-of-day
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=getattr(defaults, field.name),
                help=helps[field.name],  # BooleanOptionalAction adds the default
            )
            continue
        group.add_argument(
            flag,
            type=field.type,
            default=getattr(defaults, field.name),
            choices=STRATEGIES if field.name == "strategy" else None,
            help=f"{helps[field.name]} (default: %(default)s)",
        )


def _flags(changes: dict) -> str:
    """A candidate's changes as the run flags that make them, e.g. --units 64 --layers 2."""
    out = []
    for name, value in changes.items():
        flag = "--" + name.replace("_", "-")
        out.append(flag if value is True else f"{flag} {value}")
    return " ".join(out)


def _from_flags(cls, args: argparse.Namespace):
    """The config dataclass built from its flags; an invalid value is a usage error."""
    try:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    except ValueError as e:
        raise UsageError(str(e)) from e


class UsageError(Exception):
    """A flag or path the user gave cannot be used; the message says which and why."""


def split_data_path(path: str) -> tuple[str, str]:
    """Turns --data into (folder, file glob): a file is matched by name, a folder by '*.csv*'.

    Raises:
      UsageError: a local path that does not exist, or a folder without CSV files.
    """
    if "://" in path:  # A remote URI (gs://, s3://, ...) is taken as given: a folder ends with '/'.
        if path.endswith("/"):
            return path.rstrip("/"), CSV_GLOB
        folder, name = path.rsplit("/", 1)
        return folder, name
    local = Path(path).expanduser().resolve()
    if local.is_dir():
        if not any(local.glob(CSV_GLOB)):
            raise UsageError(f"--data {path}: the folder holds no file matching {CSV_GLOB}")
        return str(local), CSV_GLOB
    if not local.is_file():
        raise UsageError(f"--data {path}: no such file or folder")
    return str(local.parent), local.name


@dataclasses.dataclass(frozen=True)
class DataInput:
    """Where --data points: a folder (root), the glob of its files, and the span pattern of input in spans."""

    root: str
    pattern: str
    span_pattern: str = ""


def _placeholder_split(path: str) -> tuple[str, str]:
    """'ROOT/span-{SPAN}/*.csv' -> ('ROOT', 'span-{SPAN}/*.csv'): the folders before the first placeholder."""
    steps = path.split("/")
    first = next(i for i, step in enumerate(steps) if spans.has_placeholder(step))
    return "/".join(steps[:first]), "/".join(steps[first:])


def data_input(path: str) -> DataInput:
    """What --data means: a file, a flat folder of CSV files, or spans.

    Spans are given by a pattern with TFX's placeholders ({SPAN}, or {YYYY}, {MM} and {DD}), e.g.
    DATA/span-{SPAN}/*.csv.gz, or found in a local folder whose every CSV file follows one of spans.DETECTED_LAYOUTS
    (DATA/span-0001/*.csv.gz, DATA/span-0001.csv.gz, DATA/2013-09-01/*.csv, DATA/2013-09-01.csv.gz).

    Raises:
      UsageError: a local path that does not exist, a folder without CSV files, or a pattern that cannot be used.
    """
    if spans.has_placeholder(path):
        root, pattern = _placeholder_split(path)
        try:
            spans.check(pattern)
        except spans.SpanPatternError as e:
            raise UsageError(f"--data {e}") from e
        if "://" not in path:
            local = Path(root).expanduser().resolve()
            if not local.is_dir():
                raise UsageError(f"--data {path}: no such folder {root}")
            root = str(local)
        return DataInput(root, spans.glob_of(pattern), pattern)
    if "://" not in path and Path(path).expanduser().is_dir():
        local = Path(path).expanduser().resolve()
        # Spans are files in the folder or in its subfolders, never deeper (spans.DETECTED_LAYOUTS).
        names = [str(p.relative_to(local)) for p in (*local.glob("*"), *local.glob("*/*")) if p.is_file()]
        layout = spans.detect(names)
        if layout is not None:
            return DataInput(str(local), spans.glob_of(layout), layout)
    return DataInput(*split_data_path(path))


def _add_pipeline_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that shape the pipeline itself, shared by run and compile."""
    parser.add_argument(
        "--split",
        choices=contract.SPLIT_SCHEMES,
        default="time",
        help="time: train on the oldest 64%%, eval on the next 16%%, test on the newest 20%% by Time "
        "(default; how fraud models meet the future); random: hash-based 64/16/20 as in the tutorial",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=0,
        metavar="N",
        help="with --data in spans: train on the newest N spans (default: 0, all of them)",
    )
    parser.add_argument(
        "--accept-drift",
        action="store_true",
        help="go on when a feature's drift (newest span vs previous) or skew (test vs train) is past its threshold "
        "in pipeline/drift.pbtxt, retraining on the changed data knowingly; the summary records it",
    )
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="a Beam pipeline argument for every Beam-based component, repeatable "
        "(e.g. --beam-arg=--direct_num_workers=2 --beam-arg=--direct_running_mode=multi_processing, or "
        "--beam-arg=--runner=DataflowRunner --beam-arg=--project=P --beam-arg=--region=R ...). "
        "Workers of any runner but the direct one must import this project: unless the args already ship it, "
        "compile adds --sdk_container_image=IMAGE (Dataflow) or --environment_config=IMAGE (a portable runner's "
        "DOCKER environment) and otherwise --setup_file=setup.py of the project's source",
    )
    training = parser.add_argument_group("training (defaults: the tutorial's)")
    _add_flags(training, HParams, _HPARAM_HELP)
    training.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="TRIALS",
        help="run TFX's Tuner before the Trainer: a KerasTuner random search of this many trials over "
        f"{', '.join(SEARCH_SPACE)} on the eval split's PR-AUC; the Trainer then trains with the best values "
        "(default: 0, no search)",
    )
    default = ThresholdPolicy()
    op = parser.add_argument_group(
        "operating threshold (chosen by the Trainer on the eval split, never on test; it travels with the model "
        "and gives the Evaluator's TP, FP, TN, FN, precision and recall; "
        f"default: --min-precision {default.min_precision} --confidence-z {default.confidence_z:g})"
    )
    op.add_argument(
        "--min-precision", type=float, metavar="P", help="the threshold with the most eval recall at precision >= P"
    )
    op.add_argument(
        "--confidence-z",
        type=float,
        metavar="Z",
        help="with the precision target: the lower end of the eval precision's Wilson interval at Z standard errors "
        "must reach P, so few eval frauds do not pass by luck (0: the eval precision as it is)",
    )
    op.add_argument("--fn-cost", type=float, metavar="A", help="what a missed fraud costs (give with --fp-cost)")
    op.add_argument(
        "--fp-cost",
        type=float,
        metavar="B",
        help="what a false alarm costs: the threshold minimising A*missed frauds + B*false alarms on eval",
    )
    op.add_argument("--threshold", type=float, metavar="T", help="a fixed threshold, e.g. the tutorial's 0.5")
    _add_flags(parser.add_argument_group("blessing gates (Evaluator on the test split)"), GateConfig, _GATE_HELP)
    _add_flags(
        parser.add_argument_group("data gate (AnomaliesGate, before Transform: too few frauds is a data rejection)"),
        DataMinimums,
        _DATA_HELP,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud-pipeline",
        description="TFX pipeline for imbalanced classification (credit-card fraud).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run the pipeline locally on Apache Beam",
        description=(
            "Run the pipeline on the local Beam runner. Writes DIR/summary.json, DIR/pipeline.log, "
            "the ML Metadata store DIR/metadata.sqlite, the artifacts under DIR/tfx and pushed models under "
            f"DIR/serving. Exit codes: {st.EXIT_OK} model blessed and pushed, {st.EXIT_NOT_BLESSED} run completed "
            f"but the model was not blessed (nothing pushed), {st.EXIT_DATA_REJECTED} data rejected by validation, "
            f"{st.EXIT_FAILED} any other failure, {st.EXIT_USAGE} bad command line."
        ),
    )
    run.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="a CSV file (plain or .gz) or a folder of them, with the creditcard.csv columns; or data in "
        "time-ordered spans: a folder of span-NNNN/ folders or span-NNNN.csv files (or dated YYYY-MM-DD ones), or a "
        "pattern with {SPAN} such as DATA/span-{SPAN}/*.csv.gz (default: the embedded sample "
        "data/creditcard_sample.csv.gz)",
    )
    run.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"output folder, reused across runs so unchanged steps are cached (default: ./{DEFAULT_OUTPUT})",
    )
    run.add_argument("--no-cache", action="store_true", help="re-run every component instead of reusing results")
    run.add_argument("--no-report", action="store_true", help="skip the HTML report (DIR/runs/RUN/report/report.html)")
    _add_pipeline_flags(run)

    rep = commands.add_parser(
        "report",
        help="write the HTML report of a local run",
        description=(
            "Write a self-contained HTML report (figures embedded) and its PNGs for a run of `fraud-pipeline run`, "
            "from the run's own artifacts: class imbalance, training history, the operating threshold, confusion "
            "matrix, ROC and precision-recall curves (train and test), metrics per slice, the blessing verdict and "
            "feature distributions of frauds vs normal transactions. `run` writes it already; this re-writes it, "
            "or writes an earlier run's."
        ),
    )
    rep.add_argument(
        "--output", default=DEFAULT_OUTPUT, metavar="DIR", help="the run's output folder (default: ./%(default)s)"
    )
    rep.add_argument("--run", default="latest", metavar="ID", help="a run id (see DIR/runs) or 'latest' (default)")
    rep.add_argument("--to", metavar="FOLDER", help="where to write the report (default: DIR/runs/ID/report)")

    cmp_ = commands.add_parser(
        "compare",
        help="train the imbalance strategies (or model options) on the same splits and compare them",
        description=(
            "Run one pipeline with a Trainer and an Evaluator per candidate (by default the strategies baseline, "
            "class_weight, oversample; also model options such as time_of_day or ensemble) after a shared "
            "ingest, validation and Transform; nothing is pushed. Writes DIR/compare.json and "
            "DIR/compare/compare.html: test ROC and precision-recall curves overlaid, a metrics table and which "
            "model would pass the value gates."
        ),
    )
    cmp_.add_argument("--data", default=str(DEFAULT_DATA), help="a CSV file or folder (default: the embedded sample)")
    cmp_.add_argument(
        "--output", default=DEFAULT_COMPARE_OUTPUT, metavar="DIR", help="output folder (default: ./%(default)s)"
    )
    cmp_.add_argument(
        "--strategies",
        "--candidates",
        dest="strategies",
        default=",".join(STRATEGIES),
        help="comma-separated candidates to compare, each a change to the training flags: the strategies "
        f"{', '.join(STRATEGIES)}, or the model options "
        + "; ".join(f"{k} ({_flags(v)})" for k, v in CANDIDATES.items() if k not in STRATEGIES)
        + " (default: %(default)s)",
    )
    cmp_.add_argument("--no-cache", action="store_true", help="re-run every component instead of reusing results")
    _add_pipeline_flags(cmp_)

    comp = commands.add_parser(
        "compile",
        help="compile the pipeline for Kubeflow Pipelines v2 or Vertex AI Pipelines",
        description=(
            "Compile the same pipeline with KubeflowV2DagRunner into a KFP v2 spec (JSON, or YAML when FILE ends in "
            ".yaml). Nothing is submitted. The data location is a runtime parameter (data_root); the other "
            "options are fixed in the spec."
        ),
    )
    comp.add_argument("--target", choices=TARGETS, required=True, help="vertex: a PipelineJob; kubeflow: a spec")
    comp.add_argument("--image", required=True, help="the pipeline image (see the Dockerfile), e.g. gcr.io/P/fraud:1")
    comp.add_argument(
        "--pipeline-root", required=True, metavar="ROOT", help="where runs write artifacts, e.g. gs://B/r"
    )
    comp.add_argument(
        "--data",
        required=True,
        metavar="URI",
        help="a CSV file, a folder URI ending in /, or spans as a pattern with {SPAN} (e.g. gs://B/data/span-{SPAN}/*.csv.gz;"
        " each run picks the newest spans then); its folder is the default of the data_root runtime parameter",
    )
    comp.add_argument("--output", required=True, metavar="FILE", help="the spec file to write (.json or .yaml)")
    comp.add_argument("--serving-dir", metavar="URI", help="where blessed models are pushed (default: ROOT/serving)")
    comp.add_argument(
        "--schema-path",
        default=IMAGE_SCHEMA_PATH,
        metavar="PATH",
        help="the curated schema as the containers see it (default: %(default)s, where the Dockerfile puts it)",
    )
    _add_pipeline_flags(comp)

    rp = commands.add_parser(
        "replay",
        help="cut a file into time-ordered spans and run the pipeline once per span, as a daily schedule would",
        description=(
            "Cut --data into K spans of equal size by Time and run `fraud-pipeline run` once per span into one output "
            "folder: before run k, span k is written to DIR/spans/span-000k/, so each run sees the spans that have "
            "arrived, checks drift (newest span vs previous, test vs train), trains on the newest --window spans and "
            "is compared with the model serving then. Prints a row per run and the serving versions; writes "
            "DIR/replay.json. Flags after -- go to every run (e.g. -- --strategy oversample)."
        ),
    )
    rp.add_argument("--data", required=True, help="a CSV file (plain or .gz) with the creditcard.csv columns")
    rp.add_argument("--spans", type=int, required=True, metavar="K", help="how many spans to cut it into")
    rp.add_argument("--window", type=int, default=0, metavar="N", help="train on the newest N spans (default: 0, all)")
    rp.add_argument("--output", required=True, metavar="DIR", help="a new output folder for all the runs")
    rp.add_argument("run_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    sub = commands.add_parser(
        "submit",
        help="start a run of a compiled spec on Vertex AI Pipelines or Kubeflow Pipelines",
        description="Upload a spec written by `fraud-pipeline compile` and start a run; prints its id and URL.",
    )
    sub.add_argument("file", metavar="FILE", help="the compiled spec (.json or .yaml)")
    sub.add_argument("--target", choices=TARGETS, required=True)
    sub.add_argument("--project", help="Google Cloud project (vertex)")
    sub.add_argument("--region", help="Google Cloud region, e.g. europe-west4 (vertex)")
    sub.add_argument("--service-account", metavar="SA", help="service account the run uses (vertex)")
    sub.add_argument("--host", metavar="URL", help="the Kubeflow Pipelines API endpoint (kubeflow)")
    sub.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"a file holding a bearer token for the Kubeflow Pipelines API (kubeflow); or set {TOKEN_ENV}. "
        "The token is never taken from the command line, where the process list and shell history would keep it",
    )
    sub.add_argument("--token", help=argparse.SUPPRESS)
    sub.add_argument("--experiment", default="fraud-pipeline", help="experiment to file the run under (kubeflow)")
    sub.add_argument("--run-name", help="the run's name (kubeflow; default: the file name)")
    sub.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a runtime parameter of the spec, repeatable (e.g. --param data_root=gs://bucket/new-data)",
    )

    reh = commands.add_parser(
        "rehearse",
        help="execute a compiled spec on this machine as Kubeflow Pipelines or Vertex AI would",
        description=(
            "Run every task of a spec written by `fraud-pipeline compile` here, in dependency order, each as its "
            "container would: the compiled command and args with the placeholders filled, the ExecutorInput built "
            "as the target's backend builds it (open-source Kubeflow Pipelines' driver for a Kubeflow spec, the "
            "legacy invocation for a Vertex PipelineJob). gs:// and s3:// URIs are mapped under --root, the image's "
            "/pipeline/ onto this checkout, Dataflow's Beam arguments dropped (the direct runner runs the jobs); "
            "each mapping is printed. Writes ROOT/summary.json and the report as `run` does, with the same exit "
            "codes, and each task's log under ROOT/logs/RUN/."
        ),
    )
    reh.add_argument("spec", metavar="SPEC", help="the compiled spec (.json or .yaml)")
    reh.add_argument(
        "--data",
        metavar="PATH",
        help="a local CSV file or folder for the data_root parameter (a file's name must match the compiled "
        "pattern); default: the compiled data_root, mapped under --root",
    )
    reh.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a runtime parameter, as for submit"
    )
    reh.add_argument(
        "--root",
        default="output/rehearsal",
        metavar="DIR",
        help="the folder that stands for the object store and holds the logs, reused across rehearsals so the "
        "serving folder carries over (default: ./%(default)s)",
    )
    reh.add_argument(
        "--parallel", type=int, default=2, metavar="N", help="tasks run at once at most (default: %(default)s)"
    )
    reh.add_argument("--no-report", action="store_true", help="skip the HTML report")

    pred = commands.add_parser(
        "predict",
        help="score transactions in bulk with a pushed model",
        description=(
            "Score every row of a CSV file (plain or .gz) or folder of them with a model this pipeline pushed, "
            "streaming (memory stays flat as the file grows), in input order. Each row is checked against the same "
            "contract as training: the feature columns Time, V1..V28, Amount, each a number (Class is optional, "
            "not used for scoring, and kept in the output). Writes per row: its line (and file, for a folder), "
            "Time, Class when given, probability, decision (1 = flag as fraud), the operating threshold and the "
            f"model version. Exit codes: {st.EXIT_OK} scored, {st.EXIT_DATA_REJECTED} a header or row breaks the "
            f"contract (without --rejects), {st.EXIT_FAILED} any other failure, {st.EXIT_USAGE} bad command line "
            "or no model."
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
        help=f"the run output folder whose serving/ holds the pushed models (default: ./{DEFAULT_OUTPUT})",
    )
    pred.add_argument("--to", required=True, metavar="FILE", help="where to write the scores: CSV, or gzip if .gz")
    pred.add_argument(
        "--rejects",
        metavar="FILE",
        help="write rows that break the contract here (file, line, reason, row) and score the rest; without it the "
        "first such row stops the command",
    )
    pred.add_argument(
        "--batch-size", type=int, default=8192, metavar="N", help="rows scored per call of the model (default: 8192)"
    )
    return parser


def threshold_policy(args: argparse.Namespace) -> ThresholdPolicy:
    """The operating-threshold policy of the flags: at most one of the three ways; a precision target by default."""
    costs = (args.fn_cost, args.fp_cost)
    z = args.confidence_z
    given = [
        name
        for name, present in (
            ("--min-precision", args.min_precision is not None),
            ("--fn-cost/--fp-cost", any(c is not None for c in costs)),
            ("--threshold", args.threshold is not None),
        )
        if present
    ]
    if len(given) > 1:
        raise UsageError(f"choose the operating threshold one way, not with {' and '.join(given)}")
    if z is not None and given and given[0] != "--min-precision":
        raise UsageError(f"--confidence-z goes with the precision target, not with {given[0]}")
    try:
        if args.threshold is not None:
            return ThresholdPolicy(kind="fixed", value=args.threshold)
        if any(c is not None for c in costs):
            if None in costs:
                raise UsageError("--fn-cost and --fp-cost go together")
            return ThresholdPolicy(kind="cost", fn_cost=args.fn_cost, fp_cost=args.fp_cost)
        given_values = {"min_precision": args.min_precision, "confidence_z": z}
        return ThresholdPolicy(kind="precision", **{k: v for k, v in given_values.items() if v is not None})
    except ValueError as e:
        raise UsageError(str(e)) from e


def _tune_trials(args: argparse.Namespace) -> int:
    if args.tune < 0:
        raise UsageError(f"--tune {args.tune}: give a number of trials, or 0 for no search")
    return args.tune


def _beam_args(args: argparse.Namespace, image: str | None, setup_file: str | None) -> tuple[str, ...]:
    """--beam-arg values, with what a non-local runner's workers need to import the project (beam_workers)."""
    try:
        shipping = beam_workers.ship(args.beam_arg, image=image, setup_file=setup_file)
    except beam_workers.WorkerCodeError as e:
        raise UsageError(str(e)) from e
    for arg in shipping.added:
        print(
            f"fraud-pipeline: added --beam-arg={arg} so that the Beam workers can import this project", file=sys.stderr
        )
    return shipping.args


def _pipeline_config(
    args: argparse.Namespace, data: DataInput, image: str | None = None, setup_file: str | None = None, **paths
) -> PipelineConfig:
    """PipelineConfig from the shared flags plus the data and the runner's paths.

    image, setup_file: how remote Beam workers get the project's code (see pipeline.beam_workers).
    """
    if args.window < 0:
        raise UsageError(f"--window {args.window}: give a number of spans, or 0 for all")
    if args.window and not data.span_pattern:
        raise UsageError(
            f"--window {args.window}: --data {args.data} is not in spans (give a folder of spans such as "
            "DATA/span-0001/*.csv.gz, or a pattern with {SPAN})"
        )
    return PipelineConfig(
        data_root=data.root,
        data_pattern=data.pattern,
        span_pattern=data.span_pattern,
        window=args.window,
        drift_config=DRIFT_CONFIG_PATH.read_text(),
        accept_drift=args.accept_drift,
        split=args.split,
        beam_pipeline_args=_beam_args(args, image, setup_file),
        hparams=_from_flags(HParams, args),
        tune_trials=_tune_trials(args),
        threshold_policy=threshold_policy(args),
        gates=_from_flags(GateConfig, args),
        data_minimums=_from_flags(DataMinimums, args),
        code_versions=fingerprint.code_versions(),
        schema_fingerprint=serving.file_digest(str(SCHEMA_PATH))[:16],
        **paths,
    )


def _data_files(data: DataInput, window: int) -> list[str]:
    """The local files a run on this data reads, as CsvExampleGen will find them (the window's spans, or the glob)."""
    if data.span_pattern:
        found = spans.find(data.root, data.span_pattern, glob.glob(f"{data.root}/{spans.glob_of(data.span_pattern)}"))
        return [f for span in spans.newest(found, window) for f in span.files]
    return sorted(glob.glob(f"{data.root}/{data.pattern}"))


def _baseline_key(data: DataInput, config: PipelineConfig) -> str:
    """ServingBaseline's cache key for a local run (components.serving.baseline_key): the baseline the run will
    compare with, from the serving folder and the identity of the model this data and config train."""
    identity = None
    files = _data_files(data, config.window) if "://" not in data.root else []
    if files:
        identity = serving.training_identity(serving.data_fingerprint(files, data.root), config.training_config())
    return serving.baseline_key(config.serving_dir, identity)


def _local_config(args: argparse.Namespace, **extra) -> tuple[OutputLayout, PipelineConfig]:
    """(OutputLayout, PipelineConfig) of a local run into --output on --data."""
    given = beam_workers.options(args.beam_arg)
    runner, endpoint = given.get("runner"), given.get("job_endpoint")
    if endpoint and endpoint != "embed" and not beam_workers.answers(endpoint):
        # Beam would wait for it as long as --job_server_timeout allows (a day, see beam_workers).
        raise UsageError(f"--beam-arg=--job_endpoint={endpoint}: no job service answers there")
    if beam_workers.runner_family(runner) == "dataflow":
        # A local run keeps its data, artifacts and metadata in local folders, which Dataflow's VMs cannot reach.
        raise UsageError(
            f"--beam-arg=--runner={runner}: Dataflow's workers cannot read --data or write --output on this "
            "machine; compile the pipeline for Vertex AI instead (fraud-pipeline compile --target vertex "
            "--pipeline-root gs://... --beam-arg=--runner=DataflowRunner ...), where everything lives on gs://"
        )
    layout = OutputLayout(str(Path(args.output).expanduser().resolve()))
    data = data_input(args.data)
    config = _pipeline_config(
        args,
        data,
        pipeline_root=layout.pipeline_root,
        serving_dir=layout.serving_dir,
        setup_file=str(SOURCE_SETUP) if SOURCE_SETUP.exists() else None,
        schema_path=str(SCHEMA_PATH),
        metadata_path=layout.metadata_path,
        enable_cache=not args.no_cache,
        **extra,
    )
    return layout, dataclasses.replace(config, baseline_key=_baseline_key(data, config))


def _run(args: argparse.Namespace) -> int:
    layout, config = _local_config(args)
    # Heavy imports (TensorFlow, TFX) only once the command line is known to be good.
    from pipeline.runners.local import run

    result = run(config, layout, input_path=args.data)
    if result.exit_code != st.EXIT_OK:
        print(f"fraud-pipeline: {result.message}", file=sys.stderr)
    _print_run(result.record)
    print(f"outputs: {layout.root} (summary: {layout.summary_path}, log: {layout.log_path})")
    if not args.no_report and result.record["run_id"] is not None:
        _write_report(result.record, layout.report_dir(result.record["run_id"]))
    return result.exit_code


def _write_report(summary: dict, folder: str) -> bool:
    """Writes a run's report and prints its path; a failure is reported without changing the run's verdict."""
    from pipeline.report import run_page

    try:
        path = run_page.build(summary, folder)
    except Exception as e:  # noqa: BLE001 - the run's result stands; the report is told apart.
        print(f"fraud-pipeline: the report could not be written: {type(e).__name__}: {e}", file=sys.stderr)
        return False
    print(f"report: {path}")
    return True


def _report(args: argparse.Namespace) -> int:
    layout = OutputLayout(str(Path(args.output).expanduser().resolve()))
    if args.run == "latest":
        path = Path(layout.summary_path)
        if not path.is_file():
            raise UsageError(f"--output {args.output}: no run here yet (no summary.json)")
    else:
        path = Path(layout.run_summary_path(args.run))
        if not path.is_file():
            runs = sorted(p.name for p in Path(layout.runs_dir).glob("*")) if Path(layout.runs_dir).is_dir() else []
            raise UsageError(f"--run {args.run}: no such run in {layout.runs_dir}; runs: {', '.join(runs) or 'none'}")
    summary = json.loads(path.read_text())
    if summary.get("run_id") is None:
        raise UsageError(f"{path}: the run recorded no run id (it failed before its first component)")
    folder = args.to or layout.report_dir(summary["run_id"])
    return st.EXIT_OK if _write_report(summary, folder) else st.EXIT_FAILED


def _compare(args: argparse.Namespace) -> int:
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    unknown = [s for s in strategies if s not in CANDIDATES]
    if unknown or not strategies or len(set(strategies)) != len(strategies):
        raise UsageError(f"--strategies {args.strategies}: give distinct names among {', '.join(CANDIDATES)}")
    if args.tune:
        raise UsageError("--tune searches for one run's model; compare trains fixed candidates side by side")
    layout, config = _local_config(args, pipeline_name=COMPARE_PIPELINE_NAME)
    from pipeline.results.comparison import table
    from pipeline.runners.local import compare

    result = compare(config, layout, args.data, strategies)
    if result.exit_code != st.EXIT_OK:
        print(f"fraud-pipeline: {result.message}", file=sys.stderr)
        return result.exit_code
    print(table(result.record))
    print(result.message)
    print(f"comparison: {result.record['html']} (numbers: {layout.compare_json_path})")
    return st.EXIT_OK


def _print_drift(summary: dict) -> None:
    from pipeline.results.summary import drift_verdict

    spans_read = summary["input"].get("spans")
    if spans_read:
        previous = spans_read["previous"] or "none yet"
        print(f"spans: {', '.join(spans_read['window'])} (newest {spans_read['newest']}, previous {previous})")
    found = summary.get("drift")
    if not found:
        return
    largest = []
    for comparison in found["comparisons"]:
        measured = [f for f in comparison["features"] if f["value"] is not None and f["threshold"]]
        if measured:
            top = max(measured, key=lambda f: f["value"] / f["threshold"])
            largest.append(
                f"{comparison['name']}: largest {top['feature']} {top['value']:.3f} (threshold {top['threshold']:g})"
            )
    print(f"drift and skew: {drift_verdict(summary)}; " + "; ".join(largest))
    if found["accepted"]:
        print("  past its thresholds and accepted with --accept-drift: " + "; ".join(found["exceeded"]))


def _print_run(summary: dict) -> None:
    for split, counts in summary["splits"].items():
        print(f"{split:>5}: {counts['rows']} rows, {counts['frauds']} frauds")
    _print_drift(summary)
    print(f"status: {summary['status']}")
    if summary.get("tuning"):
        best = ", ".join(f"{k} {v}" for k, v in summary["tuning"]["best"].items())
        scores = [t["score"] for t in summary["tuning"]["trials"]]
        print(f"tuned ({len(scores)} trials, best eval PR-AUC {max(scores):.4f}): {best}")
    if summary["evaluation"] is None:
        return
    overall = summary["evaluation"]["overall"]
    shown = ", ".join(f"{m} {overall[m]:.4f}" for m in ("pr_auc", "roc_auc", "recall_at_precision") if m in overall)
    print(f"test metrics: {shown}")
    op = summary["operating_threshold"]
    if op is not None:
        at = "; ".join(
            f"{split} precision {op[split]['precision']:.4f}, recall {op[split]['recall']:.4f}"
            for split in ("eval", "test")
            if split in op
        )
        print(f"operating threshold {op['threshold']:.4f} ({op['policy_description']}): {at}")
        if op["target_met"] is False:
            print("  the precision target was not reached on eval; the most precise threshold is used")
    print(summary["baseline"])
    if summary["blessed"] and summary.get("already_serving"):
        print(f"blessed: yes; the same model is serving already: {summary['pushed_model']} (nothing pushed again)")
    elif summary["blessed"]:
        print(f"blessed: yes; pushed to {summary['pushed_model']}")
    else:
        print("blessed: no; nothing pushed")
        for failure in summary["not_blessed_reasons"]:
            print(f"  - {gates_lib.describe_failure(failure)}")


def _compile(args: argparse.Namespace) -> int:
    if "://" not in args.pipeline_root:
        raise UsageError(f"--pipeline-root {args.pipeline_root}: give a URI the cluster can reach (gs://, s3://)")
    if args.pipeline_root.startswith("minio://"):
        # The Kubeflow default store: its launcher can upload there, but the TFX executors write their artifacts
        # themselves through TensorFlow's file systems, which have no minio:// scheme.
        raise UsageError(
            f"--pipeline-root {args.pipeline_root}: TFX's executors cannot write to minio://; give a gs:// bucket "
            "(or s3:// with tensorflow-io in the image)"
        )
    root = args.pipeline_root.rstrip("/")
    config = _pipeline_config(
        args,
        data_input(args.data),
        image=args.image,
        setup_file=f"{IMAGE_PROJECT_DIR}/setup.py",
        pipeline_root=root,
        serving_dir=args.serving_dir or f"{root}/serving",
        schema_path=args.schema_path,
        metadata_path=None,
        # Nothing on Kubeflow or Vertex runs the driver hook TFX compiles for a FileBasedExampleGen.
        example_gen_driver=False,
        runtime_data_root=True,
    )
    from pipeline.runners.kubeflow import compile_spec
    from pipeline.runners.spec_io import write_spec

    write_spec(compile_spec(config, args.image, args.target), args.output)
    print(f"compiled for {args.target}: {args.output}")
    return st.EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    if args.spans < 1 or args.window < 0:
        raise UsageError("--spans must be at least 1 and --window at least 0")
    if not Path(args.data).is_file():
        raise UsageError(f"--data {args.data}: no such file")
    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    for flag in ("--data", "--output", "--window"):
        if any(a == flag or a.startswith(flag + "=") for a in run_args):
            raise UsageError(f"{flag} after --: replay sets it for every run itself")
    from pipeline import replay

    try:
        record = replay.replay(args.data, args.spans, args.window, Path(args.output).expanduser().resolve(), run_args)
    except (ValueError, FileExistsError) as e:
        raise UsageError(str(e)) from e
    print(replay.table(record["runs"]))
    print(f"serving versions: {', '.join(record['serving']) or 'none'}")
    print(f"replay: {Path(args.output) / replay.REPLAY_JSON}")
    failed = [r["span"] for r in record["runs"] if r["exit_code"] not in replay.VERDICT_EXITS]
    if failed:
        print(
            f"fraud-pipeline: the runs of spans {', '.join(failed)} failed; see {args.output}/pipeline.log",
            file=sys.stderr,
        )
        return st.EXIT_FAILED
    return st.EXIT_OK


def _rehearsal_params(args: argparse.Namespace, spec: dict) -> dict:
    """--param values and --data (as data_root), checked against the spec."""
    import fnmatch

    from pipeline.runners.spec_config import task_parameters
    from pipeline.runners.submit import SubmitError, parse_params

    try:
        params = parse_params(args.param, spec)
    except SubmitError as e:
        raise UsageError(str(e)) from e
    if args.data:
        path = Path(args.data).expanduser().resolve()
        if not path.exists():
            raise UsageError(f"--data {args.data}: no such file or folder")
        pattern = json.loads(task_parameters(spec, cfg.EXAMPLE_GEN)["input_config"])["splits"][0]["pattern"]
        if path.is_file() and not fnmatch.fnmatch(path.name, pattern):
            raise UsageError(f"--data {args.data}: the spec reads files matching {pattern} in data_root")
        params[DATA_ROOT_PARAMETER] = str(path.parent if path.is_file() else path)
    return params


def _rehearse(args: argparse.Namespace) -> int:
    from pipeline.runners import rehearsal
    from pipeline.runners.spec_config import config_of, task_parameters
    from pipeline.runners.spec_io import read_spec

    if not Path(args.spec).is_file():
        raise UsageError(f"{args.spec}: no such file")
    spec = read_spec(args.spec)
    root = Path(args.root).expanduser().resolve()
    params = _rehearsal_params(args, spec)
    say = lambda line: print(f"[fraud-pipeline] {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        done = rehearsal.rehearse(spec, root, PACKAGE_DIR.parent, params, say, parallel=args.parallel)
    except rehearsal.RehearsalError as e:
        raise UsageError(str(e)) from e
    from pipeline.results import summary as summary_lib

    mapping = rehearsal.Mapping(root, PACKAGE_DIR.parent)
    destination = json.loads(task_parameters(spec, cfg.PUSHER)["push_destination"])["filesystem"]["base_directory"]
    config = config_of(spec, done.parameters[DATA_ROOT_PARAMETER], done.pipeline_root, mapping.text(destination))
    layout = OutputLayout(str(root))
    with _quiet_logs():
        verdict, record = summary_lib.run_summary(
            rehearsal.executed(done), config, layout, done.parameters[DATA_ROOT_PARAMETER]
        )
    record["rehearsal"] = {
        "target": done.target,
        "spec": str(Path(args.spec).resolve()),
        "mapped": done.mapped,
        "tasks": {n: {"state": t.state, "seconds": t.seconds, "log": t.log} for n, t in done.tasks.items()},
    }
    summary_lib.write(layout.summary_path, record)
    summary_lib.write(layout.run_summary_path(done.run_id), record)
    if verdict.exit_code != st.EXIT_OK:
        print(f"fraud-pipeline: {verdict.message}", file=sys.stderr)
        failed = [t for t in done.tasks.values() if t.state == "FAILED"]
        for task in failed:
            print(
                f"  task {task.name} failed: {task.error}\n  command: {' '.join(task.command)[:300]} ...\n"
                f"  log: {task.log}",
                file=sys.stderr,
            )
    _print_run(record)
    print(f"outputs: {layout.root} (summary: {layout.summary_path}, task logs: {root / 'logs' / done.run_id})")
    if not args.no_report and not any(t.state == "FAILED" for t in done.tasks.values()):
        _write_report(record, layout.report_dir(done.run_id))
    return verdict.exit_code


@contextlib.contextmanager
def _quiet_logs():
    import logging

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        yield
    finally:
        logging.getLogger().setLevel(level)


def _token(args: argparse.Namespace) -> str | None:
    """The Kubeflow bearer token from --token-file or the environment; refused on the command line."""
    if args.token is not None:
        raise UsageError(
            f"--token: a token on the command line shows in the process list and the shell history; "
            f"put it in a file for --token-file, or in the environment variable {TOKEN_ENV}"
        )
    if args.token_file:
        path = Path(args.token_file).expanduser()
        if not path.is_file():
            raise UsageError(f"--token-file {args.token_file}: no such file")
        token = path.read_text().strip()
        if not token:
            raise UsageError(f"--token-file {args.token_file}: the file is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _predict(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: give a number of rows, 1 or more")
    if not Path(args.data).exists():
        raise UsageError(f"--data {args.data}: no such file or folder")
    from components.rejection import DataRejectedError
    from pipeline import predict as predict_lib

    try:
        model = Path(args.model) if args.model else predict_lib.newest_model(OutputLayout(args.output).serving_dir)
        result = predict_lib.predict(args.data, model, args.to, args.rejects, args.batch_size)
    except predict_lib.ModelNotFoundError as e:
        raise UsageError(str(e)) from e
    except DataRejectedError as e:
        print(f"fraud-pipeline: data rejected: {e}", file=sys.stderr)
        return st.EXIT_DATA_REJECTED
    rate = result.scored / max(result.seconds, 1e-9)
    print(f"scored {result.scored:,} rows in {result.seconds:.1f} s ({rate:,.0f} rows/s) with {result.model}")
    if args.rejects:
        print(f"rejected {result.rejected:,} rows: {args.rejects}")
    print(f"scores: {args.to}")
    return st.EXIT_OK


def _submit(args: argparse.Namespace) -> int:
    needed = {"vertex": ("project", "region"), "kubeflow": ("host",)}[args.target]
    missing = [f"--{name}" for name in needed if not getattr(args, name)]
    if missing:
        raise UsageError(f"--target {args.target} needs {' and '.join(missing)}")
    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    from pipeline.runners.kfp_backend import UnsupportedSpecError
    from pipeline.runners.spec_io import read_spec
    from pipeline.runners.submit import SubmitError, parse_params, submit_kubeflow, submit_vertex

    token = _token(args) if args.target == "kubeflow" else None
    try:
        params = parse_params(args.param, read_spec(args.file))
        if args.target == "vertex":
            submitted = submit_vertex(args.file, args.project, args.region, params, args.service_account)
        else:
            run_name = args.run_name or Path(args.file).stem
            submitted = submit_kubeflow(args.file, args.host, params, run_name, args.experiment, token)
    except UnsupportedSpecError as e:
        raise UsageError(f"{args.file}: {e} (compile it with --target kubeflow)") from e
    except SubmitError as e:
        message = str(e).replace(token, "[token]") if token else str(e)  # a secret never reaches the terminal
        print(f"fraud-pipeline: {message}", file=sys.stderr)
        return st.EXIT_FAILED
    print(f"run id: {submitted.run_id}")
    print(f"run URL: {submitted.url}")
    return st.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    # Quiet TensorFlow's C++ start-up chatter and the libraries' import-time deprecation notices;
    # the Python logs of a run go to its log file.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TFX 1.16 and TF Transform use Keras 2 (the tf_keras package).
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="google")
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "compile":
            return _compile(args)
        if args.command == "report":
            return _report(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "submit":
            return _submit(args)
        if args.command == "replay":
            return _replay(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "rehearse":
            return _rehearse(args)
    except UsageError as e:
        print(f"fraud-pipeline: {e}", file=sys.stderr)
        return st.EXIT_USAGE
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
