"""Benchmark: runs `fraud-pipeline run` on a full-size CSV and prints a table of time, memory and test metrics.

Usage: python bench/bench_pipeline.py [--data PATH] [--strategy S ...] [--output DIR] [-- extra run flags]
Default data: ../shared/data/creditcard_past.csv.gz (227,845 rows). Each strategy runs into a fresh folder,
so every component executes (no cache); peak memory is the largest resident set of the run's process tree.
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "fraud-pipeline"
METRICS = ("pr_auc", "roc_auc", "recall_at_precision", "precision", "recall")


def run_once(data: str, strategy: str, output: Path, extra: list) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    started = time.monotonic()
    proc = subprocess.run(
        [str(CLI), "run", "--data", data, "--output", str(output), "--strategy", strategy, *extra],
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    path = output / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    # The CLI writes summary.json, then the HTML report: the time since then is the report's.
    report_seconds = time.time() - path.stat().st_mtime if path.exists() else None
    return {
        "strategy": strategy,
        "exit": proc.returncode,
        "seconds": seconds,
        "report_seconds": report_seconds,
        "summary": summary,
        "stderr": proc.stderr,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "creditcard_past.csv.gz"))
    parser.add_argument("--strategy", action="append", dest="strategies")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results"))
    parser.add_argument("extra", nargs="*", help="more `fraud-pipeline run` flags, after --")
    args = parser.parse_args()
    strategies = args.strategies or ["baseline"]

    rows = []
    for strategy in strategies:
        result = run_once(args.data, strategy, Path(args.output) / strategy, args.extra)
        # Children's peak RSS so far (kB on Linux); runs are sequential, so it is the max over runs up to now.
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows.append(result)
        if result["exit"] not in (0, 4):
            print(result["stderr"][-2000:], file=sys.stderr)

    print(f"data: {args.data}")
    components = sorted({c for r in rows for c in r["summary"].get("components", {})})
    header = ["strategy", "exit", "total s", "peak RSS MB", "epochs"] + [f"{c} s" for c in components]
    header += ["report s", "threshold"] + list(METRICS)
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        s = r["summary"]
        overall = (s.get("evaluation") or {}).get("overall", {})
        cells = [
            r["strategy"],
            str(r["exit"]),
            f"{r['seconds']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
            str((s.get("trainer") or {}).get("epochs_run", "")),
        ]
        cells += [str(s.get("components", {}).get(c, {}).get("seconds", "")) for c in components]
        threshold = (s.get("operating_threshold") or {}).get("threshold")
        cells += [
            f"{r['report_seconds']:.0f}" if r["report_seconds"] is not None else "",
            f"{threshold:.4f}" if threshold is not None else "",
        ]
        cells += [f"{overall[m]:.4f}" if m in overall else "" for m in METRICS]
        print(" | ".join(cells))
    return 0 if all(r["exit"] in (0, 4) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
