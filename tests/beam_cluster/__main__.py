"""python -m tests.beam_cluster fetch | flink [FOLDER] [--taskmanagers N] | spark [FOLDER] [--workers N]

fetch: fetches the engines into the cache (engines.py). flink, spark: start that cluster under FOLDER, print the
flags of `fraud-pipeline run` that use it (its worker pools; then, on a second line, workers started by Beam's boot
that install the project the run stages), and stop everything they started on Ctrl-C or when a part exits.
"""

import argparse
import signal
import sys
import time
from pathlib import Path

from tests.beam_cluster import engines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.beam_cluster", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("fetch", "flink", "spark"))
    parser.add_argument("folder", nargs="?", default="beam-cluster")
    parser.add_argument("--taskmanagers", "--workers", type=int, default=2, dest="workers")
    args = parser.parse_args()
    if args.what == "fetch":
        try:
            for part, where in engines.fetch().items():
                print(f"{part}: {where}")
        except engines.EngineUnavailableError as e:
            print(f"cannot fetch the engines: {e}", file=sys.stderr)
            return 1
        return 0
    if args.what == "flink":
        from tests.beam_cluster.flink import FlinkCluster as Cluster
    else:
        from tests.beam_cluster.spark import SparkCluster as Cluster
    # A kill stops what was started too (the engines run in sessions of their own, so they would outlive us).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Cluster(Path(args.folder), args.workers) as cluster:
        print("--beam-workers-installed", " ".join(f"--beam-arg={a}" for a in cluster.beam_args("pool")), flush=True)
        print(" ".join(f"--beam-arg={a}" for a in cluster.beam_args("boot")), flush=True)
        try:
            while cluster.processes.alive():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
