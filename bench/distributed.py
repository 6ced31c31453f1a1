"""Benchmark: the pipeline's Beam components on the direct runner and on a portable runner with 1 and 2 SDK workers.

Usage: python bench/distributed.py [--data PATH] [--workers 1 2] [--output DIR]
Default data: ../shared/data/creditcard_past.csv.gz (227,845 rows). Each configuration runs `fraud-pipeline run
--no-report` cold into a fresh folder. The portable runs use tests/beam_cluster: Beam's Python job service and a
worker pool whose workers start without the project and install what the run stages (the CLI adds --setup_file),
each configuration on a fresh cluster, so the one-time install is inside its first job's time. The table gives each
Beam component's seconds, the Trainer's (not Beam: the same on every runner), the total, and whether splits and
test metrics equal the direct runner's.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.beam_cluster import LocalBeamCluster  # noqa: E402

CLI = Path(sys.executable).parent / "fraud-pipeline"
BEAM_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")
METRICS = ("pr_auc", "roc_auc", "recall_at_precision", "tp", "fp", "tn", "fn")
BOOT_LINE = re.compile(r"^boot (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) (.*)$", re.M)


def run(data: str, output: Path, beam_args: list[str]) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    command = [str(CLI), "run", "--data", data, "--output", str(output), "--no-report"]
    started = time.monotonic()
    proc = subprocess.run(command + [f"--beam-arg={a}" for a in beam_args], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-3000:]}")
    summary = json.loads((output / "summary.json").read_text())
    return {"seconds": seconds, "summary": summary}


def install_seconds(worker_pool_log: str) -> float | None:
    """From the first worker's boot: seconds from fetching the staged files to starting the SDK harness."""
    stamps = [(datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f"), what) for t, what in BOOT_LINE.findall(worker_pool_log)]
    fetched = next((t for t, what in stamps if what.startswith("retrieved")), None)
    started = next((t for t, what in stamps if what.startswith("starting the SDK harness")), None)
    return (started - fetched).total_seconds() if fetched and started else None


def table(results: dict) -> str:
    names = list(results)
    direct = results[names[0]]["summary"]

    def row(label, cells):
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [row("seconds", names), "|" + "---|" * (len(names) + 1)]
    for component in BEAM_COMPONENTS:
        lines.append(
            row(component, [f"{r['summary']['components'][component]['seconds']:.0f}" for r in results.values()])
        )
    beam = {n: sum(r["summary"]["components"][c]["seconds"] for c in BEAM_COMPONENTS) for n, r in results.items()}
    lines.append(row("**Beam components**", [f"**{beam[n]:.0f}**" for n in names]))
    lines.append(row("Beam components / direct", [f"{beam[n] / beam[names[0]]:.2f}x" for n in names]))
    lines.append(
        row("Trainer (not Beam)", [f"{r['summary']['components']['Trainer']['seconds']:.0f}" for r in results.values()])
    )
    lines.append(row("total (wall)", [f"{r['seconds']:.0f}" for r in results.values()]))
    lines.append(
        row(
            "of which worker install (once)",
            ["" if r.get("install") is None else f"{r['install']:.0f}" for r in results.values()],
        )
    )
    same_splits = [str(r["summary"]["splits"] == direct["splits"]).lower() for r in results.values()]
    lines.append(row("splits equal direct's", same_splits))
    overall = direct["evaluation"]["overall"]
    same_metrics = [
        str(all(abs(r["summary"]["evaluation"]["overall"][m] - overall[m]) <= 1e-6 for m in METRICS)).lower()
        for r in results.values()
    ]
    lines.append(row("test metrics equal direct's", same_metrics))
    lines.append(
        row("test PR-AUC", [f"{r['summary']['evaluation']['overall']['pr_auc']:.4f}" for r in results.values()])
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "creditcard_past.csv.gz"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "distributed"))
    args = parser.parse_args()
    output = Path(args.output).resolve()
    results = {"direct": run(args.data, output / "direct", [])}
    print(f"direct: {results['direct']['seconds']:.0f} s", flush=True)
    for workers in args.workers:
        name = f"portable, {workers} worker{'s' if workers > 1 else ''}"
        with LocalBeamCluster(output / f"cluster-{workers}") as cluster:
            result = run(args.data, output / f"portable-{workers}", cluster.beam_args(workers=workers))
            result["install"] = install_seconds(cluster.log("worker-pool"))
        results[name] = result
        print(f"{name}: {result['seconds']:.0f} s", flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
