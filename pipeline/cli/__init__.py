"""The `fraud-pipeline` command: flags to a typed config, the config to a runner; one module per command group.

- local.py: run, report, compare;   cluster.py: compile, rehearse, submit;
- schedule.py: replay;              scoring.py: predict, outcomes;   history.py: history, rollback;
- build.py: the pipeline's flags to a PipelineConfig; data.py: what --data means; flags.py: flags from the config
  dataclasses; printing.py: what goes to the terminal.
"""

import argparse
import os
import sys
import warnings

from pipeline import status as st
from pipeline.cli import cluster, history, local, schedule, scoring
from pipeline.cli.flags import UsageError

# The command groups, in the order `fraud-pipeline --help` lists their commands.
GROUPS = (local, cluster, schedule, scoring, history)


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per command, each with its handler as its `handler` default."""
    out = argparse.ArgumentParser(
        prog="fraud-pipeline", description="TFX pipeline for imbalanced classification (credit-card fraud)."
    )
    commands = out.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(commands)
    return out


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
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as e:
        print(f"fraud-pipeline: {e}", file=sys.stderr)
        return st.EXIT_USAGE


__all__ = ["UsageError", "main", "parser"]
