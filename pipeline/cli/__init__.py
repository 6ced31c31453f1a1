"""The `fraud-pipeline` command: flags to a typed config, the config to a runner; one module per command group.

- local.py: run, report, compare;   cluster.py: compile, rehearse, submit;
- schedule.py: replay;              scoring.py: predict, outcomes;   history.py: history, rollback, verify;
- simulate.py: simulate (the second dataset's transaction log);
- build.py: the pipeline's flags to a PipelineConfig; data.py: what --data means; flags.py: flags from the config
  dataclasses; printing.py: what goes to the terminal.
"""

import argparse
import gc
import logging
import os
import sys
import warnings

from compat import importlib_metadata
from components.lib.rejection import DataRejectedError
from contract import OutputLayout
from pipeline.cli import cluster, history, local, schedule, scoring, serve, simulate
from pipeline.cli.flags import UsageError
from pipeline.definition import faults, metadata
from pipeline.definition import status as st

# The command groups, in the order `fraud-pipeline --help` lists their commands.
GROUPS = (local, cluster, schedule, scoring, serve, history, simulate)
# The commands that read or write ML Metadata (pipeline/definition/metadata.py): they take --metadata.
READ_METADATA = ("run", "compare", "replay", "history")


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per command, each with its handler as its `handler` default."""
    out = argparse.ArgumentParser(
        prog="fraud-pipeline", description="TFX pipeline for imbalanced classification (credit-card fraud)."
    )
    commands = out.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(commands)
    for name in READ_METADATA:
        commands.choices[name].add_argument(
            "--metadata",
            metavar="URL",
            help=f"a shared ML Metadata store, postgresql://USER@HOST[:PORT]/DB (default: ${metadata.ENV_URL}, else "
            f"OUTPUT/metadata.sqlite); the password from ${metadata.ENV_PASSWORD} or the file "
            f"${metadata.ENV_PASSWORD_FILE} names, never the URL",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    # Quiet TensorFlow's C++ start-up chatter and the libraries' import-time deprecation notices;
    # the Python logs of a run go to its log file.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # And ML Metadata's (a line each time it connects to a PostgreSQL store); its warnings and errors still print.
    os.environ.setdefault("GLOG_minloglevel", "1")
    # TFX 1.16 and TF Transform use Keras 2 (the tf_keras package).
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="google")
    # A full disk must not turn the logging module's own complaints into tracebacks on the terminal.
    logging.raiseExceptions = False
    importlib_metadata.scan_installed_distributions_once()
    args = parser().parse_args(argv)
    try:
        _shared_metadata(args)
        return args.handler(args)
    except UsageError as e:
        print(f"fraud-pipeline: {e}", file=sys.stderr)
        return st.EXIT_USAGE
    except DataRejectedError as e:
        # Refused before anything started (the checks of csv_contract.check_training_files, the headers to score).
        print(f"fraud-pipeline: data rejected: {e}", file=sys.stderr)
        return st.EXIT_DATA_REJECTED
    except faults.EnvironmentFaultError as e:
        print(f"fraud-pipeline: {e}", file=sys.stderr)
        return st.EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print(f"fraud-pipeline: {args.command} interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - no traceback reaches the terminal: one sentence, the rest in a log.
        return _unexpected(args, e)


def _shared_metadata(args: argparse.Namespace) -> None:
    """--metadata into the environment, where every step of the command (and the processes it starts) reads the
    store from; a URL that is not one is a usage error."""
    url = getattr(args, "metadata", None)
    if url:
        try:
            metadata.parse(url)
        except metadata.MetadataUrlError as e:
            raise UsageError(str(e)) from None
        os.environ[metadata.ENV_URL] = url
    elif os.environ.get(metadata.ENV_URL):
        try:
            metadata.shared()
        except metadata.MetadataUrlError as e:
            raise UsageError(f"{metadata.ENV_URL}: {e}") from None


def console() -> int:
    """The console script and `python -m pipeline.cli`: main(), then the interpreter's shutdown made cheap.

    With TensorFlow, Beam and TFX loaded, Python's shutdown spends a second or more of every command collecting the
    reference cycles of a module graph the process is about to drop (docs/benchmarks.md, start-up). The command's
    outputs are written and closed by then, so gc.freeze() leaves those objects to the operating system; atexit
    handlers (logging's flush and close among them) still run. Not in main(): a test calling main() in its own
    process keeps collecting.
    """
    code = main()
    gc.freeze()
    return code


def _output_of(args: argparse.Namespace) -> str | None:
    """The folder a command writes into (its log goes there), or None (compile's --output is a file)."""
    if args.command == "rehearse":
        return args.root
    if args.command in ("compile", "submit"):
        return None
    return getattr(args, "output", None)


def _unexpected(args: argparse.Namespace, error: Exception) -> int:
    output = _output_of(args)
    if faults.no_space(error):
        where = output or "the disk"
        advice = "free space and run the same command again (what finished is reused, what was half-written is not)"
        print(f"fraud-pipeline: {args.command}: no space left on the disk of {where}; {advice}", file=sys.stderr)
        return st.EXIT_ENVIRONMENT
    log = faults.record_traceback(error, args.command, output)
    if faults.broken_store(error) and output:
        layout = OutputLayout(output)
        print(
            f"fraud-pipeline: {faults.broken_store_sentence(layout.metadata_path, layout.pipeline_root)}",
            file=sys.stderr,
        )
        return st.EXIT_ENVIRONMENT
    first = (str(error).strip().splitlines() or [""])[0][:300]
    print(
        f"fraud-pipeline: {args.command} failed: {type(error).__name__}: {first} (the full traceback is in {log})",
        file=sys.stderr,
    )
    return st.EXIT_FAILED


__all__ = ["UsageError", "main", "parser"]
