"""The `fraud-pipeline` command: builds the typed config from flags and hands it to a runner."""

import argparse
import dataclasses
import hashlib
import os
import sys
import warnings
from pathlib import Path

from pipeline import features
from pipeline import gates as gates_lib
from pipeline import status as st
from pipeline.gates import GateConfig
from trainer.hparams import STRATEGIES, HParams

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_PATH = PACKAGE_DIR / "schema.pbtxt"
# The embedded sample lives at the top of the source tree (the project installs editable).
DEFAULT_DATA = PACKAGE_DIR.parent / "data" / "creditcard_sample.csv.gz"
DEFAULT_OUTPUT = "output"
CSV_GLOB = "*.csv*"


# What goes into the code fingerprint that re-runs Transform and Trainer when their code changes.
CODE_DIRS = ("transform", "trainer")
CODE_FILES = ("pipeline/features.py",)

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
}


_GATE_HELP = {
    "threshold": "decision threshold for TP, FP, TN, FN, precision and recall",
    "min_pr_auc": "bless only if the test PR-AUC is at least this",
    "at_precision": "the precision at which recall_at_precision is measured",
    "min_recall_at_precision": "bless only if recall at that precision is at least this",
    "max_pr_auc_drop": "bless only if PR-AUC is at most this much below the latest blessed model's",
    "max_recall_drop": "bless only if recall_at_precision is at most this much below the latest blessed model's",
}


def _add_flags(group, cls, helps: dict) -> None:
    """One --flag per field of a config dataclass, typed and defaulted from it."""
    defaults = cls()
    for field in dataclasses.fields(cls):
        group.add_argument(
            "--" + field.name.replace("_", "-"),
            type=field.type,
            default=getattr(defaults, field.name),
            choices=STRATEGIES if field.name == "strategy" else None,
            help=f"{helps[field.name]} (default: %(default)s)",
        )


def _from_flags(cls, args: argparse.Namespace):
    """The config dataclass built from its flags; an invalid value is a usage error."""
    try:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    except ValueError as e:
        raise UsageError(str(e)) from e


def code_version(root: Path = PACKAGE_DIR.parent) -> str:
    """A short fingerprint of the Transform and Trainer source."""
    digest = hashlib.sha256()
    paths = sorted(p for d in CODE_DIRS for p in (root / d).rglob("*.py")) + [root / f for f in CODE_FILES]
    for path in paths:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


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
            "the ML Metadata store DIR/metadata.sqlite and the artifacts under DIR/tfx. "
            f"Exit codes: {st.EXIT_OK} model blessed and pushed, {st.EXIT_NOT_BLESSED} run completed but the model "
            f"was not blessed (nothing pushed), {st.EXIT_DATA_REJECTED} data rejected by validation, "
            f"{st.EXIT_FAILED} any other failure, {st.EXIT_USAGE} bad command line."
        ),
    )
    run.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="a CSV file (plain or .gz) or a folder of them, with the creditcard.csv columns "
        "(default: the embedded sample data/creditcard_sample.csv.gz)",
    )
    run.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"output folder, reused across runs so unchanged steps are cached (default: ./{DEFAULT_OUTPUT})",
    )
    run.add_argument(
        "--split",
        choices=features.SPLIT_SCHEMES,
        default="time",
        help="time: train on the oldest 64%%, eval on the next 16%%, test on the newest 20%% by Time "
        "(default; how fraud models meet the future); random: hash-based 64/16/20 as in the tutorial",
    )
    _add_flags(run.add_argument_group("training (defaults: the tutorial's)"), HParams, _HPARAM_HELP)
    _add_flags(run.add_argument_group("blessing gates (Evaluator on the test split)"), GateConfig, _GATE_HELP)
    run.add_argument("--no-cache", action="store_true", help="re-run every component instead of reusing results")
    run.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="a Beam pipeline argument for every Beam-based component, repeatable "
        "(e.g. --beam-arg=--direct_num_workers=2 --beam-arg=--direct_running_mode=multi_processing)",
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    data_root, data_pattern = split_data_path(args.data)
    # Heavy imports (TensorFlow, TFX) only once the command line is known to be good.
    from pipeline.config import PipelineConfig
    from pipeline.local_runner import OutputLayout, run

    hparams, gates = _from_flags(HParams, args), _from_flags(GateConfig, args)
    layout = OutputLayout(str(Path(args.output).expanduser().resolve()))
    config = PipelineConfig(
        pipeline_root=layout.pipeline_root,
        serving_dir=layout.serving_dir,
        data_root=data_root,
        data_pattern=data_pattern,
        schema_path=str(SCHEMA_PATH),
        split=args.split,
        metadata_path=layout.metadata_path,
        beam_pipeline_args=tuple(args.beam_arg),
        enable_cache=not args.no_cache,
        hparams=hparams,
        gates=gates,
        code_version=code_version(),
    )
    result = run(config, layout, input_path=args.data)
    if result.exit_code != st.EXIT_OK:
        print(f"fraud-pipeline: {result.message}", file=sys.stderr)
    for split, counts in result.summary["splits"].items():
        print(f"{split:>5}: {counts['rows']} rows, {counts['frauds']} frauds")
    print(f"status: {result.status}")
    summary = result.summary
    if summary["evaluation"] is not None:
        overall = summary["evaluation"]["overall"]
        shown = ", ".join(f"{m} {overall[m]:.4f}" for m in ("pr_auc", "roc_auc", "recall_at_precision") if m in overall)
        print(f"test metrics: {shown}")
        print(summary["baseline"])
        if summary["blessed"]:
            print(f"blessed: yes; pushed to {summary['pushed_model']}")
        else:
            print("blessed: no; nothing pushed")
            for failure in summary["not_blessed_reasons"]:
                print(f"  - {gates_lib.describe_failure(failure)}")
    print(f"outputs: {layout.root} (summary: {layout.summary_path}, log: {layout.log_path})")
    return result.exit_code


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
    except UsageError as e:
        print(f"fraud-pipeline: {e}", file=sys.stderr)
        return st.EXIT_USAGE
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
