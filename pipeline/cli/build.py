"""The typed PipelineConfig from the command line: the pipeline's flags, shared by run, compare and compile."""

import argparse
import dataclasses
import itertools
import json
import os
import sys
from pathlib import Path

import contract
from components.lib import csv_contract, serving
from components.lib.rejection import DataRejectedError
from contract import OutputLayout
from datasets import spec as dataset_spec
from pipeline.cli.data import DataInput, baseline_key, data_files, data_input
from pipeline.cli.flags import UsageError, add_dataclass_flags, from_flags
from pipeline.definition import beam_workers, faults, fingerprint, metadata
from pipeline.definition import status as st
from pipeline.definition.config import PipelineConfig
from pipeline.definition.gates import DataMinimums, GateConfig
from trainer.hparams import STRATEGIES, HParams, ThresholdPolicy
from trainer.tuning import SEARCH_SPACE

SCHEMA_PATH = Path(contract.SCHEMA_FILE)
# The source tree this process runs from (the project installs editable): the embedded sample, and what remote Beam
# workers of a local run install (--setup_file).
SOURCE_ROOT = Path(contract.CONTRACT_DIR)
DEFAULT_DATA = SOURCE_ROOT / "data" / "creditcard_sample.csv.gz"
SOURCE_SETUP = SOURCE_ROOT / "setup.py"
DEFAULT_OUTPUT = "output"
IMAGE_PROJECT_DIR = contract.IMAGE_PROJECT_DIR
IMAGE_SCHEMA_PATH = f"{IMAGE_PROJECT_DIR}/{os.path.relpath(contract.SCHEMA_FILE, contract.CONTRACT_DIR)}"


def add_pipeline_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that shape the pipeline itself, shared by run and compile."""
    # Longer than a unit should be, on purpose: one argparse declaration a flag, in the order --help shows them.
    parser.add_argument(
        "--dataset",
        metavar="SPEC",
        help="the dataset spec (a YAML file naming the label, the time, the features and how each is transformed, "
        "the slices and the drift thresholds; docs/your-data.md). Default: the ULB credit-card spec, "
        "datasets/ulb/dataset.yaml",
    )
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
        "in the dataset spec, retraining on the changed data knowingly; the summary records it",
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
    parser.add_argument(
        "--beam-workers-installed",
        action="store_true",
        help="the Beam workers' environment already has this project and its pinned dependencies (a portable "
        "runner's PROCESS command or EXTERNAL worker pool on the pipeline image, or a DOCKER environment's image): "
        "nothing is staged for them, so no worker builds or installs anything before its first bundle",
    )
    training = parser.add_argument_group("training (defaults: the tutorial's)")
    add_dataclass_flags(training, HParams, choices={"strategy": STRATEGIES})
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
    op.add_argument(
        "--alerts-per-day",
        type=float,
        metavar="N",
        help="an alert budget: the threshold with the most eval recall that flags at most N transactions a day "
        "(counted over the days the eval split spans), as many as the team can work",
    )
    add_dataclass_flags(parser.add_argument_group("blessing gates (Evaluator on the test split)"), GateConfig)
    add_dataclass_flags(
        parser.add_argument_group("data gate (AnomaliesGate, before Transform: too few frauds is a data rejection)"),
        DataMinimums,
    )


def threshold_policy(args: argparse.Namespace) -> ThresholdPolicy:
    """The operating-threshold policy of the flags: at most one of the four ways; a precision target by default."""
    costs = (args.fn_cost, args.fp_cost)
    z = args.confidence_z
    given = [
        name
        for name, present in (
            ("--min-precision", args.min_precision is not None),
            ("--fn-cost/--fp-cost", any(c is not None for c in costs)),
            ("--threshold", args.threshold is not None),
            ("--alerts-per-day", args.alerts_per_day is not None),
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
        if args.alerts_per_day is not None:
            return ThresholdPolicy(kind="alerts", alerts_per_day=args.alerts_per_day)
        if any(c is not None for c in costs):
            if None in costs:
                raise UsageError("--fn-cost and --fp-cost go together")
            return ThresholdPolicy(kind="cost", fn_cost=args.fn_cost, fp_cost=args.fp_cost)
        given_values = {"min_precision": args.min_precision, "confidence_z": z}
        return ThresholdPolicy(kind="precision", **{k: v for k, v in given_values.items() if v is not None})
    except ValueError as e:
        raise UsageError(str(e)) from e


def tune_trials(args: argparse.Namespace) -> int:
    if args.tune < 0:
        raise UsageError(f"--tune {args.tune}: give a number of trials, or 0 for no search")
    return args.tune


def beam_args(args: argparse.Namespace, image: str | None, setup_file: str | None) -> tuple[str, ...]:
    """--beam-arg values, with what a non-local runner's workers need to import the project (beam_workers)."""
    try:
        shipping = beam_workers.ship(
            args.beam_arg,
            image=image,
            setup_file=setup_file,
            installed=getattr(args, "beam_workers_installed", False),
        )
    except beam_workers.WorkerCodeError as e:
        raise UsageError(str(e)) from e
    for arg in shipping.added:
        print(
            f"fraud-pipeline: added --beam-arg={arg} so that the Beam workers can import this project", file=sys.stderr
        )
    return shipping.args


def dataset_of(args: argparse.Namespace) -> dataset_spec.DatasetSpec:
    """The --dataset spec (the default one without the flag).

    Raises:
      UsageError: a spec that cannot be read or is not well formed (the message names the field).
    """
    path = getattr(args, "dataset", None)
    if not path:
        return contract.DEFAULT_DATASET
    try:
        return dataset_spec.load(path)
    except dataset_spec.SpecError as e:
        raise UsageError(str(e)) from e


def pipeline_config(
    args: argparse.Namespace, data: DataInput, image: str | None = None, setup_file: str | None = None, **paths
) -> PipelineConfig:
    """PipelineConfig from the shared flags plus the data and the runner's paths.

    image, setup_file: how remote Beam workers get the project's code (see pipeline.definition.beam_workers).
    """
    if args.window < 0:
        raise UsageError(f"--window {args.window}: give a number of spans, or 0 for all")
    if args.window and not data.span_pattern:
        raise UsageError(
            f"--window {args.window}: --data {args.data} is not in spans (give a folder of spans such as "
            "DATA/span-0001/*.csv.gz, or a pattern with {SPAN})"
        )
    dataset = dataset_of(args)
    schema = paths.pop("schema_path", None) or dataset.schema_path
    return PipelineConfig(
        dataset=dataset,
        schema_path=schema,
        data_root=data.root,
        data_pattern=data.pattern,
        span_pattern=data.span_pattern,
        window=args.window,
        drift_config=dataset_spec.drift_config(dataset),
        accept_drift=args.accept_drift,
        split=args.split,
        beam_pipeline_args=beam_args(args, image, setup_file),
        hparams=from_flags(HParams, args),
        tune_trials=tune_trials(args),
        threshold_policy=threshold_policy(args),
        gates=from_flags(GateConfig, args),
        data_minimums=from_flags(DataMinimums, args),
        code_versions=fingerprint.code_versions(),
        schema_fingerprint=serving.file_digest(dataset.schema_path)[:16] if os.path.exists(dataset.schema_path) else "",
        **paths,
    )


def image_schema_path(dataset: dataset_spec.DatasetSpec) -> str:
    """The spec's schema as the pipeline image holds it (the project at IMAGE_PROJECT_DIR).

    Raises:
      UsageError: a schema outside the project, which the image does not hold (give --schema-path).
    """
    relative = os.path.relpath(dataset.schema_path, contract.CONTRACT_DIR)
    if relative.startswith(".."):
        raise UsageError(
            f"{dataset.schema_path}: the dataset's schema is outside the project, so not in the pipeline image; put "
            "the spec and its schema under datasets/ (the Dockerfile copies that folder) or give --schema-path"
        )
    return f"{IMAGE_PROJECT_DIR}/{relative}"


def check_dataset(dataset: dataset_spec.DatasetSpec, files: list[str]) -> None:
    """Does the spec fit the data (datasets.check, on the first file's header and first rows)? Without a schema
    beside the spec yet, writes its first draft there (datasets.schema) for the team to review and commit.

    Raises:
      SpecMismatchError: naming the spec's field, the column, the file and the line.
    """
    from datasets import check, schema

    if not files:
        return
    path = files[0]
    header = csv_contract.read_header(path)
    check.check_header(dataset, header, path)
    seen = check.check_rows(dataset, header, itertools.islice(csv_contract.careful_rows(path), check.SAMPLE_ROWS), path)
    if not os.path.exists(dataset.schema_path):
        Path(dataset.schema_path).write_text(schema.bootstrap(dataset, seen, path))
        print(
            f"fraud-pipeline: wrote the curated schema {dataset.schema_path}, bootstrapped from the spec and the first "
            f"{seen['rows']:,} rows of {path}: review it and commit it; every run enforces it from now on",
            file=sys.stderr,
        )


def refused_before_start(layout: OutputLayout, input_path: str, message: str) -> None:
    """summary.json of a run whose data was refused before it started (no run id, nothing else written), so that a
    scheduler reading the summary never reads the previous run's."""
    record = {"run_id": None, "status": st.DATA_REJECTED, "message": message, "input": {"path": input_path}}
    # Written as pipeline.results.summary.write writes it, not through it: that module imports the whole stack.
    tmp = f"{layout.summary_path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, layout.summary_path)


def local_config(args: argparse.Namespace, **extra) -> tuple[OutputLayout, PipelineConfig]:
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
    # Before anything runs: a folder that cannot be written, or a store that is not a database any more.
    faults.check_writable(layout.root)
    store = metadata.location(layout.metadata_path)
    if metadata.is_server(store):
        try:
            metadata.check_server(store)
        except ConnectionError as e:
            raise faults.EnvironmentFaultError(str(e)) from None
        metadata.export_password()
    else:
        faults.check_metadata(layout.metadata_path, layout.pipeline_root)
    dataset = dataset_of(args)
    if "://" not in data.root:
        # What CsvExampleGen would refuse first, from the files' first bytes, in a fraction of a second rather than
        # after the imports and the pipeline's start (the same function, so the same words); and whether the
        # dataset spec fits the data.
        try:
            files = data_files(data, getattr(args, "window", 0) or 0)
            if dataset != contract.DEFAULT_DATASET:
                check_dataset(dataset, files)
            csv_contract.check_training_files(files, dataset.columns)
        except (DataRejectedError, dataset_spec.SpecMismatchError) as e:
            refused_before_start(layout, args.data, str(e))
            raise DataRejectedError(str(e)) from e
    config = pipeline_config(
        args,
        data,
        pipeline_root=layout.pipeline_root,
        serving_dir=layout.serving_dir,
        setup_file=str(SOURCE_SETUP) if SOURCE_SETUP.exists() else None,
        metadata_path=store,
        enable_cache=not args.no_cache,
        **extra,
    )
    return layout, dataclasses.replace(config, baseline_key=baseline_key(data, config))
