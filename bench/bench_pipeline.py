"""Benchmark: the plain reference script and `fraud-pipeline run` on a full-size CSV, side by side, with ratios.

Usage: python bench/bench_pipeline.py [--data PATH] [--strategy S ...] [--scale N] [--output DIR] [-- run flags]
Default data: ../shared/data/creditcard_past.csv.gz (227,845 rows). The reference (bench/reference.py: the
tutorial's steps as one script, same split and model) runs first, then each strategy into a fresh folder, so every
component executes (no cache), then the default strategy once more into the same folder (the cached re-run). Peak
memory is the largest resident set of one process (the pipeline runs its Beam components in its own process).
With --scale N it then builds an N-times file (the data repeated N times, each copy's Time shifted past the one
before and its V1..V28 given a little noise) and runs the first strategy on it cold, for time and memory at 1x and Nx.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "fraud-pipeline"
METRICS = ("pr_auc", "roc_auc", "recall_at_precision", "precision", "recall")


def measured(command: list[str]) -> dict:
    """Runs a command; its exit code, stdout, stderr, wall seconds and the peak RSS of that process (os.wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return {
            "exit": os.waitstatus_to_exitcode(status),
            "stdout": out.read(),
            "stderr": err.read(),
            "seconds": seconds,
            "peak_rss_mb": usage.ru_maxrss / 1024,  # kB on Linux
        }


def rerun(data: str, strategy: str, output: Path, extra: list) -> dict:
    """The same run again into the same folder: everything should come from the cache."""
    return run_once(data, strategy, output, extra, fresh=False)


def run_once(data: str, strategy: str, output: Path, extra: list, fresh: bool = True) -> dict:
    if fresh:
        shutil.rmtree(output, ignore_errors=True)
    # No HTML report: the reference makes none (the report takes about 7 s on the full file; time it apart).
    command = [str(CLI), "run", "--data", data, "--output", str(output), "--strategy", strategy, "--no-report"]
    result = measured(command + extra)
    path = output / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    if path.exists():
        # Kept for later reading: the cached re-run writes summary.json again.
        shutil.copy(path, output / ("summary.cold.json" if fresh else "summary.cached.json"))
    return {**result, "strategy": strategy, "summary": summary}


def scaled_copy(data: str, times: int, path: Path, seed: int = 0) -> Path:
    """The data repeated `times` times: copy k has Time + k * (span + 1) and V1..V28 times (1 + N(0, 0.01))."""
    import numpy as np
    import pandas as pd

    if path.exists():
        return path
    frame = pd.read_csv(data)
    span = float(frame["Time"].max()) + 1.0
    noisy = [c for c in frame.columns if c.startswith("V")]
    rng = np.random.default_rng(seed)
    copies = []
    for k in range(times):
        copy = frame.copy()
        copy["Time"] = copy["Time"] + k * span
        if k:
            copy[noisy] = copy[noisy] * (1.0 + 0.01 * rng.standard_normal((len(copy), len(noisy))))
        copies.append(copy)
    partial = path.with_suffix(".partial.gz")
    pd.concat(copies).to_csv(partial, index=False, compression={"method": "gzip", "compresslevel": 1})
    partial.rename(path)
    return path


def run_reference(data: str, output: Path) -> dict:
    """bench/reference.py in a subprocess; its JSON result plus the wall time and peak RSS seen from here."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / "reference.json"
    run = measured([sys.executable, str(ROOT / "bench" / "reference.py"), "--data", data, "--json", str(path)])
    if run["exit"] != 0:
        raise SystemExit(f"the reference failed:\n{run['stderr'][-3000:]}")
    return {**json.loads(path.read_text()), "wall_seconds": run["seconds"], "peak_rss_mb": run["peak_rss_mb"]}


def side_by_side(reference: dict, pipeline: dict, cached: dict | None) -> list[tuple[str, str, str, str]]:
    """Rows of (measure, pipeline, reference, ratio) for the first strategy's cold run."""
    summary = pipeline["summary"]
    trainer = summary.get("trainer") or {}
    components = summary.get("components", {})
    epochs = trainer.get("epochs_run")
    per_epoch = trainer["fit_seconds"] / epochs if epochs and trainer.get("fit_seconds") else None
    overall = (summary.get("evaluation") or {}).get("overall", {})

    def ratio(a, b):
        return f"{a / b:.1f}x" if a is not None and b else ""

    def number(v, fmt="{:.0f}"):
        return fmt.format(v) if v is not None else "n/a"

    ref = reference["seconds"]
    rows = [
        ("total s (wall)", number(pipeline["seconds"]), number(reference["wall_seconds"]),
         ratio(pipeline["seconds"], reference["wall_seconds"])),
        ("read + split + ingest s", number(components.get("CsvExampleGen", {}).get("seconds")),
         number(ref["read"]), ratio(components.get("CsvExampleGen", {}).get("seconds"), ref["read"])),
        ("statistics + validation s",
         number(sum(components.get(c, {}).get("seconds") or 0 for c in ("StatisticsGen", "ExampleValidator"))),
         "", ""),
        ("preprocess (Transform) s", number(components.get("Transform", {}).get("seconds")),
         number(ref["preprocess"], "{:.1f}"), ratio(components.get("Transform", {}).get("seconds"), ref["preprocess"])),
        ("Trainer s", number(components.get("Trainer", {}).get("seconds")), number(ref["train"]),
         ratio(components.get("Trainer", {}).get("seconds"), ref["train"])),
        ("epochs", number(epochs), number(reference["epochs"]), ""),
        ("Trainer s per epoch (model.fit)", number(per_epoch, "{:.2f}"),
         number(reference["seconds_per_epoch"], "{:.2f}"),
         ratio(per_epoch, reference["seconds_per_epoch"])),
        ("Evaluator s", number(components.get("Evaluator", {}).get("seconds")), number(ref["evaluate"], "{:.1f}"),
         ratio(components.get("Evaluator", {}).get("seconds"), ref["evaluate"])),
        ("cached re-run s", number(cached["seconds"]) if cached else "n/a", "", ""),
        ("peak RSS MB", number(pipeline["peak_rss_mb"]), number(reference["peak_rss_mb"]),
         ratio(pipeline["peak_rss_mb"], reference["peak_rss_mb"])),
        ("test PR-AUC", number(overall.get("pr_auc"), "{:.4f}"), number(reference["test_pr_auc"], "{:.4f}"), ""),
        ("test ROC-AUC", number(overall.get("roc_auc"), "{:.4f}"), number(reference["test_roc_auc"], "{:.4f}"), ""),
    ]  # fmt: skip
    return rows


def scale_rows(one: dict, many: dict) -> list[tuple[str, str, str, str]]:
    """Rows of (measure, 1x, Nx, ratio): total, each component, epochs, seconds per epoch, peak RSS."""

    def cells(name, a, b, fmt="{:.0f}"):
        if a is None or b is None:
            return (name, str(a), str(b), "")
        return (name, fmt.format(a), fmt.format(b), f"{b / a:.2f}x" if a else "")

    rows = [cells("total s", one["seconds"], many["seconds"])]
    comps_one, comps_many = one["summary"].get("components", {}), many["summary"].get("components", {})
    for name, c in comps_one.items():
        if (c.get("seconds") or 0) >= 0.5 and name in comps_many:
            rows.append(cells(f"{name} s", c["seconds"], comps_many[name].get("seconds")))
            rows.append(cells(f"{name} peak RSS MB (high-water mark)", c.get("peak_rss_mb"),
                              comps_many[name].get("peak_rss_mb")))  # fmt: skip
    t1, tn = one["summary"].get("trainer") or {}, many["summary"].get("trainer") or {}
    rows.append(cells("epochs", t1.get("epochs_run"), tn.get("epochs_run")))
    if t1.get("epochs_run") and tn.get("epochs_run"):
        rows.append(cells("Trainer s per epoch", t1["fit_seconds"] / t1["epochs_run"],
                          tn["fit_seconds"] / tn["epochs_run"], "{:.2f}"))  # fmt: skip
    rows.append(cells("peak RSS MB", one["peak_rss_mb"], many["peak_rss_mb"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "creditcard_past.csv.gz"))
    parser.add_argument("--strategy", action="append", dest="strategies")
    parser.add_argument("--scale", type=int, default=0, help="also run the first strategy on an N-times file")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results"))
    parser.add_argument("extra", nargs="*", help="more `fraud-pipeline run` flags, after --")
    args = parser.parse_args()
    strategies = args.strategies or ["baseline"]

    reference = run_reference(args.data, Path(args.output) / "reference")
    rows = []
    for strategy in strategies:
        result = run_once(args.data, strategy, Path(args.output) / strategy, args.extra)
        rows.append(result)
        if result["exit"] not in (0, 4):
            print(result["stderr"][-2000:], file=sys.stderr)
    first = rows[0]
    cached = rerun(args.data, first["strategy"], Path(args.output) / first["strategy"], args.extra)

    print(f"data: {args.data}")
    print(f"\npipeline ({first['strategy']}, cold) against the plain reference (bench/reference.py), same run:\n")
    print("| measure | pipeline | reference | pipeline / reference |")
    print("|---|---|---|---|")
    for row in side_by_side(reference, first, cached):
        print("| " + " | ".join(row) + " |")
    print()

    print("per component, cold run of the first strategy (peak RSS: the process's high-water mark when it finished):")
    print("| component | s | peak RSS MB |")
    print("|---|---|---|")
    for name, c in first["summary"].get("components", {}).items():
        if c.get("state") == "COMPLETE" and (c.get("seconds") or 0) >= 0.5:
            print(f"| {name} | {c['seconds']} | {c.get('peak_rss_mb', '')} |")
    print()

    if args.scale > 1:
        output = Path(args.output)
        big = scaled_copy(args.data, args.scale, output / f"scale{args.scale}.csv.gz")
        scaled = run_once(str(big), first["strategy"], output / f"{first['strategy']}-x{args.scale}", args.extra)
        print(f"scale: the same run on {args.scale}x the rows ({big})")
        print(f"| measure | 1x | {args.scale}x | ratio |")
        print("|---|---|---|---|")
        for row in scale_rows(first, scaled):
            print("| " + " | ".join(row) + " |")
        print()

    print("per strategy (cold runs):")
    components = sorted({c for r in rows for c in r["summary"].get("components", {})})
    header = ["strategy", "exit", "total s", "peak RSS MB", "epochs"] + [f"{c} s" for c in components]
    header += ["threshold"] + list(METRICS)
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
        cells += [f"{threshold:.4f}" if threshold is not None else ""]
        cells += [f"{overall[m]:.4f}" if m in overall else "" for m in METRICS]
        print(" | ".join(cells))
    return 0 if all(r["exit"] in (0, 4) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
