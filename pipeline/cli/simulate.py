"""fraud-pipeline simulate: a seeded transaction log of another shape than the ULB file (datasets/simulated/)."""

import argparse
import os

from datasets.simulated import simulator
from pipeline.cli.flags import UsageError
from pipeline.definition import status as st

SPEC = os.path.join(os.path.dirname(os.path.abspath(simulator.__file__)), "dataset.yaml")


def register(commands) -> None:
    sim = commands.add_parser(
        "simulate",
        help="write a seeded, simulated transaction log (the Fraud Detection Handbook's design) to train on with "
        "--dataset datasets/simulated/dataset.yaml",
        description="Customers and terminals on a grid, Poisson transactions a day, and the handbook's three fraud "
        "scenarios (large amounts, compromised terminals, compromised cards), with ISO timestamps, string ids, "
        "merchant category, channel, country, a text label and a few percent missing values. The same seed and "
        f"sizes write the same file. Its spec: {SPEC}",
    )
    sim.add_argument("--days", type=int, default=60, help="days of transactions (default: %(default)s)")
    sim.add_argument("--customers", type=int, default=1000, help="customers (default: %(default)s)")
    sim.add_argument("--terminals", type=int, default=200, help="terminals (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=0, help="the random seed (default: %(default)s)")
    sim.add_argument("--to", required=True, metavar="FILE", help="the CSV file to write (gzip when it ends in .gz)")
    sim.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    settings = simulator.Settings(days=args.days, customers=args.customers, terminals=args.terminals, seed=args.seed)
    try:
        written = simulator.write(settings, args.to)
    except ValueError as e:
        raise UsageError(str(e)) from e
    print(
        f"simulated {written['rows']:,} transactions, {written['frauds']:,} frauds, over {args.days} days: {args.to} "
        f"(train on it with --dataset {os.path.relpath(SPEC)})"
    )
    return st.EXIT_OK
