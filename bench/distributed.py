"""Benchmark: the pipeline's Beam components on the direct runner (with its in-process short cuts, and through TFX's
own Beam executors) and on a real Flink cluster with 1 and 2 TaskManagers (and Spark, with --spark).

Usage: python bench/distributed.py [--data PATH] [--taskmanagers 1 2] [--spark] [--boot-reference] [--output DIR]
Default data: ../shared/data/creditcard_past.csv.gz (227,845 rows). Each configuration runs `fraud-pipeline run
--no-report` cold into a fresh folder. The engines are tests/beam_cluster's (make engines fetches them): Flink 1.16
with one slot per TaskManager and Beam's Flink job server, each configuration on a fresh cluster. The SDK workers
come from a worker pool beside each TaskManager, started with the cluster in an environment that has the project
(what the pipeline image holds), and the runs pass `--beam-workers-installed`; with --boot-reference, one more
configuration has them started by Beam's Go boot in a fresh container folder per worker, each installing the project
the run stages (--setup_file), as on a cluster of stock Beam containers (how the engines ran before the pools).
The table gives each Beam component's seconds, the Trainer's (not Beam: the same on every runner), the total, the
SDK workers started and the peak resident set of a worker or a pool, the JVMs' peak resident sets, and whether
splits, threshold and test metrics equal the direct runner's.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.beam_cluster import peak_rss_mb  # noqa: E402

CLI = Path(sys.executable).parent / "fraud-pipeline"
BEAM_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")
METRICS = ("pr_auc", "roc_auc", "recall_at_precision", "tp", "fp", "tn", "fn")


def run(data: str, output: Path, beam_args: list[str], *flags: str) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    command = [str(CLI), "run", "--data", data, "--output", str(output), "--no-report", *flags]
    started = time.monotonic()
    proc = subprocess.run(command + [f"--beam-arg={a}" for a in beam_args], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-3000:]}")
    summary = json.loads((output / "summary.json").read_text())
    return {"seconds": seconds, "summary": summary}


def on_cluster(cluster, data: str, output: Path, workers: str) -> dict:
    """A run on a started cluster, with the JVMs' peak resident sets (read before they stop) and the workers'.
    workers: "pool" (each TaskManager's pool, --beam-workers-installed) or "boot" (Beam's boot, the project staged)."""
    flags = ("--beam-workers-installed",) if workers == "pool" else ()
    result = run(data, output, cluster.beam_args(workers), *flags)
    pids = cluster.jvm_pids()
    result["jvm_peak_mb"] = {name: peak_rss_mb(pid) for name, pid in pids.items() if not name.startswith("pool-")}
    if workers == "pool":
        result["worker_peaks_mb"] = list(cluster.pools.peak_rss_mb(cluster.processes).values())
        result["workers"] = sum(len(started) for started in cluster.pools.started().values())
    else:
        result["worker_peaks_mb"] = cluster.workers.peak_rss_mb()
        result["workers"] = len(cluster.workers.started())
    return result


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
    if len(names) > 1 and names[1].startswith("direct"):
        lines.append(row(f"Beam components / {names[1]}", [f"{beam[n] / beam[names[1]]:.2f}x" for n in names]))
    lines.append(
        row("Trainer (not Beam)", [f"{r['summary']['components']['Trainer']['seconds']:.0f}" for r in results.values()])
    )
    lines.append(row("total (wall)", [f"{r['seconds']:.0f}" for r in results.values()]))
    lines.append(row("SDK workers started", [str(r.get("workers", "")) for r in results.values()]))
    lines.append(
        row(
            "SDK worker (or pool) peak RSS, MB (largest)",
            [f"{max(r['worker_peaks_mb']):.0f}" if r.get("worker_peaks_mb") else "" for r in results.values()],
        )
    )
    jvms = sorted({name for r in results.values() for name in r.get("jvm_peak_mb", {})})
    for name in jvms:
        lines.append(
            row(
                f"{name} JVM peak RSS, MB",
                [f"{r['jvm_peak_mb'][name]:.0f}" if name in r.get("jvm_peak_mb", {}) else "" for r in results.values()],
            )
        )
    lines.append(
        row(
            "orchestrating process peak RSS, MB",
            [
                f"{max(c.get('peak_rss_mb', 0) for c in r['summary']['components'].values()):.0f}"
                for r in results.values()
            ],
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
    threshold = direct["operating_threshold"]["threshold"]
    lines.append(
        row(
            "threshold equal direct's",
            [
                str(abs(r["summary"]["operating_threshold"]["threshold"] - threshold) <= 1e-6).lower()
                for r in results.values()
            ],
        )
    )
    lines.append(
        row("test PR-AUC", [f"{r['summary']['evaluation']['overall']['pr_auc']:.4f}" for r in results.values()])
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "creditcard_past.csv.gz"))
    parser.add_argument("--taskmanagers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--spark", action="store_true", help="also Spark, with two workers of one core")
    parser.add_argument(
        "--boot-reference",
        action="store_true",
        help="also Flink with one TaskManager and its workers started by Beam's boot, each installing the project "
        "the run stages: how the engines ran before the pools",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "distributed"))
    args = parser.parse_args()
    from tests.beam_cluster.flink import FlinkCluster
    from tests.beam_cluster.spark import SparkCluster

    output = Path(args.output).resolve()
    results = {"direct": run(args.data, output / "direct", [])}
    print(f"direct: {results['direct']['seconds']:.0f} s", flush=True)
    # The same Beam components through TFX's own Beam executors on the direct runner (any mode but in_memory makes
    # the in-process short cuts step aside): what an engine runs, without the engine.
    executors = "direct, TFX's executors"
    results[executors] = run(args.data, output / "direct-executors", ["--direct_running_mode=multi_threading"])
    print(f"{executors}: {results[executors]['seconds']:.0f} s", flush=True)
    configurations = [(f"Flink, {n} TM{'s' if n > 1 else ''}", FlinkCluster, n, "pool") for n in args.taskmanagers]
    if args.spark:
        configurations.append(("Spark, 2 workers", SparkCluster, 2, "pool"))
    if args.boot_reference:
        configurations.append(("Flink, 1 TM, boot", FlinkCluster, 1, "boot"))
    for name, cluster_class, size, workers in configurations:
        slug = name.split(",")[0].lower() + f"-{size}-{workers}"
        shutil.rmtree(output / f"cluster-{slug}", ignore_errors=True)
        with cluster_class(output / f"cluster-{slug}", size) as cluster:
            results[name] = on_cluster(cluster, args.data, output / slug, workers)
        print(f"{name}: {results[name]['seconds']:.0f} s", flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
