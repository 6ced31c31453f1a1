"""The local commands: run (the pipeline on Apache Beam here), report (a run's HTML page), compare (candidates)."""

import argparse
import json
import sys
from pathlib import Path

import contract
from contract import OutputLayout
from pipeline.cli.build import DEFAULT_DATA, DEFAULT_OUTPUT, add_pipeline_flags, local_config
from pipeline.cli.flags import UsageError, flags_of
from pipeline.cli.printing import print_pages, print_run
from pipeline.definition import faults
from pipeline.definition import status as st
from pipeline.definition.config import COMPARE_PIPELINE_NAME
from pipeline.definition.startup import heavy_imports
from trainer.hparams import CANDIDATES, STRATEGIES

DEFAULT_COMPARE_OUTPUT = "output/compare"


def register(commands) -> None:
    """Adds run, report and compare to the command parsers."""
    run = commands.add_parser(
        "run",
        help="run the pipeline locally on Apache Beam",
        description=(
            "Run the pipeline on the local Beam runner. Writes DIR/summary.json, DIR/pipeline.log, "
            "the ML Metadata store DIR/metadata.sqlite, the artifacts under DIR/tfx and pushed models under "
            f"DIR/serving. Exit codes: {st.EXIT_OK} model blessed and pushed, {st.EXIT_NOT_BLESSED} run completed "
            f"but the model was not blessed (nothing pushed), {st.EXIT_DATA_REJECTED} data rejected by validation, "
            f"{st.EXIT_FAILED} any other failure, {st.EXIT_USAGE} bad command line, {st.ENVIRONMENT_HELP}."
        ),
    )
    run.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="a CSV file (plain or .gz; taken by its name, * ? [ are not wildcards) or a folder of them, with the "
        "creditcard.csv columns; or data in "
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
    add_pipeline_flags(run)
    run.set_defaults(handler=_run)

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
    rep.set_defaults(handler=_report)

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
        + "; ".join(f"{k} ({flags_of(v)})" for k, v in CANDIDATES.items() if k not in STRATEGIES)
        + " (default: %(default)s)",
    )
    cmp_.add_argument("--no-cache", action="store_true", help="re-run every component instead of reusing results")
    add_pipeline_flags(cmp_)
    cmp_.set_defaults(handler=_compare)


def _run(args: argparse.Namespace) -> int:
    layout, config = local_config(args)
    # Heavy imports (TensorFlow, TFX) only once the command line is known to be good.
    with heavy_imports():
        from pipeline.runners.local import run

    result = run(config, layout, input_path=args.data, pages=not args.no_report)
    if result.exit_code != st.EXIT_OK:
        print(f"fraud-pipeline: {result.message}", file=sys.stderr)
    print_run(result.record)
    if config.dataset.history and (result.record or {}).get("pushed_model"):
        _seed_online_store(args, config.dataset, str(layout.root))
    print(f"outputs: {layout.root} (summary: {layout.summary_path}, log: {layout.log_path})")
    print_pages(result.pages)
    return result.exit_code


def _seed_online_store(args: argparse.Namespace, spec, output: str) -> None:
    """After a push: the newest history of the input into the online store (pipeline/scoring/backfill.py), so that
    the first rows scored get the windows training gave them."""
    from components.lib.rejection import DataRejectedError
    from pipeline.online_store.store import OnlineStore, OnlineStoreError
    from pipeline.scoring.backfill import backfill

    try:
        store = OnlineStore.open(spec, output, getattr(args, "online_store", None))
        try:
            done = backfill(args.data, spec, store)
        finally:
            store.close()
    except (DataRejectedError, OnlineStoreError) as e:
        print(f"fraud-pipeline: the online store was not seeded ({e}); run `fraud-pipeline backfill`", file=sys.stderr)
        return
    print(f"online store: {done.rows:,} rows and {done.labels:,} labels of the history's reach written ({done.where})")


def _report(args: argparse.Namespace) -> int:
    layout = OutputLayout(str(Path(args.output).expanduser().resolve()))
    if args.run == "latest":
        path = Path(layout.summary_path)
        if not path.is_file():
            raise UsageError(f"--output {args.output}: no run here yet (no summary.json)")
    else:
        if not contract.is_run_id(args.run):
            raise UsageError(f"--run {args.run}: not a run id (see DIR/runs)")
        path = Path(layout.run_summary_path(args.run))
        if not path.is_file():
            runs = sorted(p.name for p in Path(layout.runs_dir).glob("*")) if Path(layout.runs_dir).is_dir() else []
            raise UsageError(f"--run {args.run}: no such run in {layout.runs_dir}; runs: {', '.join(runs) or 'none'}")
    summary = json.loads(path.read_text())
    if summary.get("run_id") is None:
        raise UsageError(f"{path}: the run recorded no run id (it failed before its first component)")
    if not contract.is_run_id(summary["run_id"]):
        # A changed file must not put the report outside the output folder (an absolute path, '..').
        raise UsageError(f"{path}: its run_id {summary['run_id']!r} is not a run id; the file was changed")
    folder = args.to or layout.report_dir(summary["run_id"])
    faults.check_writable(folder, "the report's folder")
    from pipeline.runners.finish import Pages, report_page

    pages = Pages()
    report_page(summary, folder, pages)
    print_pages(pages)
    return st.EXIT_FAILED if pages.errors else st.EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    unknown = [s for s in strategies if s not in CANDIDATES]
    if unknown or not strategies or len(set(strategies)) != len(strategies):
        raise UsageError(f"--strategies {args.strategies}: give distinct names among {', '.join(CANDIDATES)}")
    if args.tune:
        raise UsageError("--tune searches for one run's model; compare trains fixed candidates side by side")
    layout, config = local_config(args, pipeline_name=COMPARE_PIPELINE_NAME)
    from pipeline.results.comparison import table

    with heavy_imports():
        from pipeline.runners.local import compare

    result = compare(config, layout, args.data, strategies)
    if result.exit_code != st.EXIT_OK:
        print(f"fraud-pipeline: {result.message}", file=sys.stderr)
        return result.exit_code
    print(table(result.record))
    print(result.message)
    print(f"comparison: {result.record['html']} (numbers: {layout.compare_json_path})")
    return st.EXIT_OK
