"""The schedule command: replay (a file cut into spans, and a run per span, as a daily schedule would)."""

import argparse
import sys
from pathlib import Path

from pipeline.cli.flags import UsageError
from pipeline.cli.printing import print_pages
from pipeline.definition import status as st


def register(commands) -> None:
    """Adds replay to the command parsers."""
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
    rp.add_argument("--data", required=True, help="a CSV file (plain or .gz) with the dataset's columns")
    rp.add_argument("--dataset", metavar="SPEC", help="the dataset spec (default: the ULB one), passed on to every run")
    cut = rp.add_mutually_exclusive_group(required=True)
    cut.add_argument("--spans", type=int, metavar="K", help="how many spans of equal size to cut it into")
    cut.add_argument(
        "--days", type=float, metavar="N", help="spans of N days each, by the spec's time column (a daily schedule: 1)"
    )
    rp.add_argument("--window", type=int, default=0, metavar="N", help="train on the newest N spans (default: 0, all)")
    rp.add_argument("--output", required=True, metavar="DIR", help="a new output folder for all the runs")
    rp.add_argument("run_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    rp.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    if (args.spans is not None and args.spans < 1) or (args.days is not None and args.days <= 0) or args.window < 0:
        raise UsageError("--spans must be at least 1, --days above 0 and --window at least 0")
    if not Path(args.data).is_file():
        raise UsageError(f"--data {args.data}: no such file")
    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    for flag in ("--data", "--output", "--window", "--dataset"):
        if any(a == flag or a.startswith(flag + "=") for a in run_args):
            raise UsageError(f"{flag} after --: replay sets it for every run itself")
    from components.lib import csv_contract
    from pipeline.definition import faults
    from pipeline.runners import replay

    faults.check_writable(str(Path(args.output).expanduser()))
    from pipeline.cli.build import dataset_of

    spec = dataset_of(args)
    # What every span's run would refuse first, refused once here (data rejected, exit 3).
    csv_contract.check_training_files([args.data], spec.columns)

    try:
        output = Path(args.output).expanduser().resolve()
        record = replay.replay(
            args.data, args.spans or 0, args.window, output, run_args, dataset=args.dataset, days=args.days or 0
        )
    except (ValueError, FileExistsError) as e:
        raise UsageError(str(e)) from e
    print(replay.table(record["runs"]))
    print(f"serving versions: {', '.join(record['serving']) or 'none'}")
    print(f"replay: {Path(args.output) / replay.REPLAY_JSON}")
    print_pages(record["pages"])
    failed = [r["span"] for r in record["runs"] if r["exit_code"] not in replay.VERDICT_EXITS]
    if failed:
        print(
            f"fraud-pipeline: the runs of spans {', '.join(failed)} failed; see {args.output}/pipeline.log",
            file=sys.stderr,
        )
        return st.EXIT_FAILED
    return st.EXIT_OK
