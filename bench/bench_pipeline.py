"""Benchmark: the daily retrain, `fraud-pipeline run` against the plain reference script and the vanilla TFX peer.

Usage: python bench/bench_pipeline.py [--data PATH] [--strategy S ...] [--first-share 0.9] [--no-peer] [--scale N]
       [--output DIR] [--dataset SPEC] [-- run flags]
With --dataset (e.g. the simulated log of `fraud-pipeline simulate` and datasets/simulated/dataset.yaml), the runs
and the reference (adapted to the spec's columns) read that dataset; there is no vanilla TFX peer then.
Default data: ../shared/data/creditcard_past.csv.gz (227,845 rows). In one invocation: the reference
(bench/reference.py: the tutorial's steps as one script, same split and model) on the file's oldest 90% and on all
of it; the pipeline's first run on the oldest 90% into a fresh folder, its retrain on the whole file into the same
folder (newer rows: every component runs, and the Evaluator compares with the model the first run pushed), and the
same command again (the cached re-run); then the vanilla TFX peer (bench/vanilla_tfx.py: stock components as TFX's
examples assemble them) the same two ways. Peak memory is the largest resident set of one process (each runs its
Beam components in its own process). The steps' tables (first run, retrain) set each component beside the
plain script's step, the time outside every step (start, imports, exit) beside the script's, and the pipeline's
wall at the plain script's epochs (an estimate: its extra epochs at its own seconds per epoch). More strategies
run cold on the whole file into fresh folders. With --scale N it builds an N-times file (the data repeated N
times, each copy's Time shifted past the one before and its V1..V28 given a little noise) and runs the first
strategy cold on 1x and Nx, for time and memory.
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


def run_reference(data: str, output: Path, times: int = 2, dataset: str | None = None) -> dict:
    """bench/reference.py in a subprocess, `times` times; the fastest run's JSON result plus the wall time and peak
    RSS seen from here, and every run's wall time. The fastest, because the ratios compare the pipeline with it: on
    these machines the same script's wall time moves by up to 1.5x between two runs minutes apart, and a slow one
    would flatter the pipeline."""
    output.mkdir(parents=True, exist_ok=True)
    results = []
    for index in range(times):
        path = output / f"reference-{index}.json"
        command = [sys.executable, str(ROOT / "bench" / "reference.py"), "--data", data, "--json", str(path)]
        run = measured(command + (["--dataset", dataset] if dataset else []))
        if run["exit"] != 0:
            raise SystemExit(f"the reference failed:\n{run['stderr'][-3000:]}")
        results.append(
            {**json.loads(path.read_text()), "wall_seconds": run["seconds"], "peak_rss_mb": run["peak_rss_mb"]}
        )
    fastest = min(results, key=lambda r: r["wall_seconds"])
    return {**fastest, "wall_seconds_of_each": [r["wall_seconds"] for r in results]}


def side_by_side(reference: dict, pipeline: dict, cached: dict | None) -> list[tuple[str, str, str, str]]:
    """Rows of (measure, pipeline, reference, ratio) for one run of the first strategy (and its cached re-run, if
    given)."""
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
    # Outside every step: the interpreter's start, the imports, (the pipeline's) building the pipeline and opening
    # the store, and the exit; the plain script's steps are timed after its imports.
    ours_outside = pipeline["seconds"] - sum(c.get("seconds") or 0 for c in components.values())
    plain_outside = reference["wall_seconds"] - sum(ref.values())
    # The epochs are the seed's luck (docs/benchmarks.md): the wall with the pipeline's extra epochs (or missing
    # ones) at its own seconds per epoch taken off (or added), against the plain script as it ran.
    at_plain_epochs = (
        pipeline["seconds"] - (epochs - reference["epochs"]) * per_epoch if per_epoch is not None else None
    )
    rows = [
        ("total s (wall)", number(pipeline["seconds"]), number(reference["wall_seconds"]),
         ratio(pipeline["seconds"], reference["wall_seconds"])),
        ("total s at the plain script's epochs (estimated)", number(at_plain_epochs), number(reference["wall_seconds"]),
         ratio(at_plain_epochs, reference["wall_seconds"])),
        ("outside the steps s (start, imports, exit)", number(ours_outside, "{:.1f}"),
         number(plain_outside, "{:.1f}"), ratio(ours_outside, plain_outside)),
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
        ("peak RSS MB", number(pipeline["peak_rss_mb"]), number(reference["peak_rss_mb"]),
         ratio(pipeline["peak_rss_mb"], reference["peak_rss_mb"])),
        ("test PR-AUC", number(overall.get("pr_auc"), "{:.4f}"), number(reference["test_pr_auc"], "{:.4f}"), ""),
        ("test ROC-AUC", number(overall.get("roc_auc"), "{:.4f}"), number(reference["test_roc_auc"], "{:.4f}"), ""),
    ]  # fmt: skip
    if cached:  # the same command again: the retrain's table only
        rows.insert(-3, ("cached re-run s", number(cached["seconds"]), "", ""))
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


def oldest_share(data: str, share: float, path: Path, dataset: str | None = None) -> Path:
    """The oldest `share` of the file's rows by the time column (Time, or the --dataset spec's: the first day's data
    of the retrain), gzip level 1."""
    import pandas as pd

    if path.exists():
        return path
    if dataset:
        from datasets import spec as dataset_spec

        spec = dataset_spec.load(dataset)
        frame = pd.read_csv(data, dtype=str, keep_default_na=False)
        order = frame[spec.time].map(spec.time_of)
        kept = frame.iloc[order.argsort(kind="stable")].iloc[: int(len(frame) * share)]
    else:
        frame = pd.read_csv(data)
        kept = frame.sort_values("Time", kind="stable").iloc[: int(len(frame) * share)]
    partial = path.with_suffix(".partial.gz")
    kept.to_csv(partial, index=False, compression={"method": "gzip", "compresslevel": 1})
    partial.rename(path)
    return path


def run_peer(data: str, output: Path) -> dict:
    """bench/vanilla_tfx.py into output (a second call into the same folder is its retrain, with a baseline)."""
    path = output / f"peer-{int(time.time())}.json"
    output.mkdir(parents=True, exist_ok=True)
    run = measured([sys.executable, str(ROOT / "bench" / "vanilla_tfx.py"), "--data", data, "--output", str(output),
                    "--json", str(path)])  # fmt: skip
    if run["exit"] != 0:
        raise SystemExit(f"the vanilla TFX peer failed:\n{run['stderr'][-3000:]}")
    result = json.loads(path.read_text())
    # Its wall time without writing the split files (stock CsvExampleGen cannot cut by time; the data is the same).
    return {**result, "wall": run["seconds"] - result["write_splits_seconds"], "peak_rss_mb": run["peak_rss_mb"]}


def component_table(columns: dict[str, dict]) -> list[str]:
    """| component | seconds per column |: pipeline runs (summary components) and peer runs (components)."""
    names = []
    for result in columns.values():
        comps = result.get("summary", {}).get("components") or result.get("components") or {}
        names += [n for n in comps if n not in names]
    lines = ["| component | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in names:
        cells = []
        for result in columns.values():
            comps = result.get("summary", {}).get("components") or result.get("components") or {}
            c = comps.get(name)
            cells.append(
                "" if c is None else f"{c.get('seconds') or 0:.1f}" + (" (cached)" if c["state"] == "CACHED" else "")
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _metrics_of(result: dict) -> dict:
    if "summary" in result:
        return (result["summary"].get("evaluation") or {}).get("overall", {})
    return result.get("metrics", {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "creditcard_past.csv.gz"))
    parser.add_argument("--strategy", action="append", dest="strategies")
    parser.add_argument("--first-share", type=float, default=0.9, help="the first run's share of the rows (oldest)")
    parser.add_argument("--no-peer", action="store_true", help="skip the vanilla TFX peer (bench/vanilla_tfx.py)")
    parser.add_argument(
        "--dataset",
        help="a dataset spec (e.g. the simulated log's): passed to every run and the adapted reference; "
        "no vanilla TFX peer (it reads the ULB columns)",
    )
    parser.add_argument("--scale", type=int, default=0, help="also run the first strategy on an N-times file")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results"))
    parser.add_argument("extra", nargs="*", help="more `fraud-pipeline run` flags, after --")
    args = parser.parse_args()
    strategies = args.strategies or ["baseline"]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    first_data = str(
        oldest_share(
            args.data, args.first_share, output / f"oldest{round(args.first_share * 100)}.csv.gz", args.dataset
        )
    )
    if args.dataset:
        args.extra = [*args.extra, "--dataset", args.dataset]
        args.no_peer = True

    # The daily retrain: a first run on the oldest rows, then the whole file (newer rows added) into the same folder,
    # so the second run's Evaluator compares with the model the first pushed; then the same command again (cached).
    reference_first = run_reference(first_data, output / "reference-first", dataset=args.dataset)
    reference = run_reference(args.data, output / "reference", dataset=args.dataset)
    daily = output / "daily"
    first = run_once(first_data, strategies[0], daily, args.extra)
    retrain = run_once(args.data, strategies[0], daily, args.extra, fresh=False)
    cached = rerun(args.data, strategies[0], daily, args.extra)
    for name, result in (("first run", first), ("retrain", retrain), ("cached re-run", cached)):
        if result["exit"] not in (0, 4):
            raise SystemExit(f"the {name} failed:\n{result['stderr'][-3000:]}")
    peer_first = peer_retrain = None
    if not args.no_peer:
        shutil.rmtree(output / "peer", ignore_errors=True)
        peer_first = run_peer(first_data, output / "peer")
        peer_retrain = run_peer(args.data, output / "peer")

    print(f"data: {args.data}; first run on its oldest {args.first_share:.0%} ({first_data})")
    walls = " and ".join(
        f"{' / '.join(f'{w:.0f}' for w in r['wall_seconds_of_each'])} s" for r in (reference_first, reference)
    )
    print(f"plain script: the faster of two runs each time ({walls}: first run's data, then the whole file)")
    print(f"\npipeline ({strategies[0]}) against the plain reference (bench/reference.py) and the vanilla TFX peer "
          "(bench/vanilla_tfx.py), same invocation:\n")  # fmt: skip
    print("| measure | pipeline | plain script | pipeline / plain | vanilla TFX | vanilla / pipeline |")
    print("|---|---|---|---|---|---|")
    for label, ours, plain, peer in (
        ("first run s (wall)", first, reference_first, peer_first),
        ("retrain s (wall, with a baseline)", retrain, reference, peer_retrain),
    ):
        peer_cells = (f"{peer['wall']:.0f}", f"{peer['wall'] / ours['seconds']:.1f}x") if peer else ("", "")
        print(f"| {label} | {ours['seconds']:.0f} | {plain['wall_seconds']:.0f} | "
              f"{ours['seconds'] / plain['wall_seconds']:.1f}x | {peer_cells[0]} | {peer_cells[1]} |")  # fmt: skip
    print(f"| cached re-run s | {cached['seconds']:.0f} | | | | |")
    for label, ours, plain, peer in (
        ("peak RSS MB, first run", first, reference_first, peer_first),
        ("peak RSS MB, retrain", retrain, reference, peer_retrain),
    ):
        print(f"| {label} | {ours['peak_rss_mb']:.0f} | {plain['peak_rss_mb']:.0f} | | "
              f"{peer['peak_rss_mb']:.0f} | |" if peer else f"| {label} | {ours['peak_rss_mb']:.0f} | "
              f"{plain['peak_rss_mb']:.0f} | | | |")  # fmt: skip
    for label, ours, plain, peer in (
        ("test PR-AUC, first run", first, reference_first, peer_first),
        ("test PR-AUC, retrain", retrain, reference, peer_retrain),
    ):
        peer_auc = f"{_metrics_of(peer).get('pr_auc', float('nan')):.4f}" if peer else ""
        print(f"| {label} | {_metrics_of(ours).get('pr_auc', float('nan')):.4f} | {plain['test_pr_auc']:.4f} | | "
              f"{peer_auc} | |")  # fmt: skip
    print(f"\nretrain's baseline: {(retrain['summary'].get('evaluation') or {}).get('baseline')}")
    print(
        "\nper component, seconds (peak RSS of the pipeline's process is its high-water mark at each component's end):"
    )
    columns = {"first run": first, "retrain": retrain}
    if peer_first:
        columns.update({"vanilla first": peer_first, "vanilla retrain": peer_retrain})
    print("\n".join(component_table(columns)))
    print()

    for name, plain, ours, again in (
        ("first run", reference_first, first, None),
        ("retrain", reference, retrain, cached),
    ):
        print(f"against the plain script's steps, the {name}:\n")
        print("| measure | pipeline | reference | pipeline / reference |")
        print("|---|---|---|---|")
        for row in side_by_side(plain, ours, again):
            print("| " + " | ".join(row) + " |")
        print()

    rows = [first]
    for strategy in strategies[1:]:
        result = run_once(args.data, strategy, output / strategy, args.extra)
        rows.append(result)
        if result["exit"] not in (0, 4):
            print(result["stderr"][-2000:], file=sys.stderr)

    if args.scale > 1:
        big = scaled_copy(args.data, args.scale, output / f"scale{args.scale}.csv.gz")
        one = run_once(args.data, strategies[0], output / f"{strategies[0]}-x1", args.extra)
        scaled = run_once(str(big), strategies[0], output / f"{strategies[0]}-x{args.scale}", args.extra)
        print(f"scale: the same cold run on {args.scale}x the rows ({big})")
        print(f"| measure | 1x | {args.scale}x | ratio |")
        print("|---|---|---|---|")
        for row in scale_rows(one, scaled):
            print("| " + " | ".join(row) + " |")
        print()

    if len(rows) > 1:
        print("per strategy (cold runs; the first on the first run's data):")
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
