"""The scoring command: predict (transactions in bulk with a pushed model)."""

import argparse
import sys
from pathlib import Path

import contract
from contract import OutputLayout
from pipeline import status as st
from pipeline.cli.build import DEFAULT_OUTPUT
from pipeline.cli.flags import UsageError


def register(commands) -> None:
    """Adds predict to the command parsers."""
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
        "--batch-size",
        type=int,
        default=contract.READ_BATCH_SIZE,
        metavar="N",
        help="rows scored per call of the model (default: %(default)s)",
    )
    pred.set_defaults(handler=_predict)


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
