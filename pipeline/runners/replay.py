"""`fraud-pipeline replay`: a file cut into time-ordered spans, and the pipeline run once per span as a schedule would.

Span k is written to OUTPUT/spans/span-000k/ just before run k, so each run sees the spans that have "arrived"
and trains on the newest --window of them; every run goes into the one output folder, so each new model is
compared with the model serving then and only blessed models reach OUTPUT/serving. No TensorFlow here: each run
is a `fraud-pipeline run` subprocess, exactly what a cron job starts.
"""

import csv
import dataclasses
import gzip
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import contract
from components.lib import drift
from components.lib.csv_contract import is_fraud, text_lines
from datasets import spec as dataset_spec
from datasets.spec import DatasetSpec
from pipeline.definition import status as st
from pipeline.scoring import record as record_lib

SPANS_FOLDER = "spans"
REPLAY_JSON = "replay.json"
# Exit codes of a run that got to its verdict (blessed, not blessed, data rejected); anything else is a failure.
VERDICT_EXITS = (st.EXIT_OK, st.EXIT_NOT_BLESSED, st.EXIT_DATA_REJECTED)


@dataclasses.dataclass(frozen=True)
class SpanFile:
    label: str
    path: str
    rows: int
    frauds: int


def cut(
    path: str, k: int, spec: DatasetSpec = contract.DEFAULT_DATASET, days: float = 0
) -> tuple[str, list[list[tuple[float, str]]]]:
    """The file's header line and its rows cut into k time-ordered parts of (nearly) equal size, or (days > 0) into
    parts of that many days each by the spec's time column, counted from the first row's day.

    Each row is kept as its text line (rows are ordered by time, stably, so rows at the same time keep their order).
    """
    lines = text_lines(path)  # the contract's reader, bounded (components/lib/csv_contract.py)
    header = next(lines, "")
    names = next(csv.reader([header]))
    if spec.time not in names or spec.label not in names:
        raise ValueError(f"{path}: the header has no {spec.time} or {spec.label} column")
    time_index = names.index(spec.time)
    rows = []
    for line in lines:
        if line.strip():
            moment = spec.time_of(next(csv.reader([line]))[time_index])
            if moment is None:
                raise ValueError(f"{path}: a {spec.time} that is not a time ({spec.time_format}): {line[:80]!r}")
            rows.append((float(moment), line))
    rows.sort(key=lambda r: r[0])
    if days > 0 and rows:
        width = days * contract.SECONDS_PER_DAY
        first = rows[0][0] - rows[0][0] % contract.SECONDS_PER_DAY
        parts: dict[int, list] = {}
        for row in rows:
            parts.setdefault(int((row[0] - first) // width), []).append(row)
        return header, [parts[i] for i in sorted(parts)]
    if len(rows) < k:
        raise ValueError(f"{path}: {len(rows)} rows cannot make {k} spans")
    size, extra = divmod(len(rows), k)
    parts, start = [], 0
    for index in range(k):
        end = start + size + (1 if index < extra else 0)
        parts.append(rows[start:end])
        start = end
    return header, parts


def write_span(
    folder: Path, number: int, header: str, rows: list[tuple[float, str]], spec: DatasetSpec = contract.DEFAULT_DATASET
) -> SpanFile:
    """Writes one span as folder/span-NNNN/part-0.csv.gz (the layout `run --data` detects)."""
    label = f"{number:04d}"
    target = folder / f"span-{label}" / "part-0.csv.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    names = next(csv.reader([header]))
    label_index = names.index(spec.label)
    fraud = is_fraud if spec.label_is_integer else (lambda cell: spec.label_of(cell) == 1)
    frauds = sum(1 for _, line in rows if fraud(next(csv.reader(io.StringIO(line)))[label_index]))
    tmp = target.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=1, newline="") as f:
        f.write(header)
        f.writelines(line if line.endswith("\n") else line + "\n" for _, line in rows)
    os.replace(tmp, target)
    return SpanFile(label, str(target), len(rows), frauds)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True)


def served(output: Path, span: SpanFile) -> dict | None:
    """The span scored by the model serving when it arrived, before any retraining on it, then joined with its
    labels, as a team's `predict` and later `outcomes` would: the realized numbers and the serving skew; None
    before any model serves."""
    serving = output / "serving"
    if not serving.is_dir() or not any(contract.is_version(p.name) for p in serving.iterdir()):
        return None
    scores = output / "scores" / f"span-{span.label}.csv.gz"
    scores.parent.mkdir(exist_ok=True)
    before = set(record_lib.batches(str(output)))
    scored = _cli("predict", "--data", span.path, "--output", str(output), "--to", str(scores))
    recorded = [b for b in record_lib.batches(str(output)) if b not in before]
    if scored.returncode != st.EXIT_OK or len(recorded) != 1:
        sys.stderr.write(scored.stderr[-3000:])
        return {"error": f"predict exited {scored.returncode}"}
    batch_id = recorded[0].name
    batch = record_lib.read_batch(recorded[0])
    joined = _cli("outcomes", "--labels", span.path, "--output", str(output), "--batch", batch_id)
    overall = json.loads((output / "outcomes" / "outcomes.json").read_text())["overall"] if joined.stdout else {}
    skew = batch["skew"] if batch["skew"].get("measured") else None
    top = drift.largest((skew or {}).get("comparison", {}).get("features", []))
    return {
        "batch": batch_id,
        "model_version": batch["model"]["version"],
        "precision": overall.get("precision"),
        "recall": overall.get("recall"),
        "pr_auc": overall.get("pr_auc"),
        "alerts": overall.get("alerts"),
        "skew_exceeded": (skew or {}).get("exceeded", []),
        "skew_largest": {"feature": top["feature"], "value": top["value"], "threshold": top["threshold"]}
        if top
        else None,
    }


def _run(output: Path, window: int, run_args: list[str]) -> tuple[int, dict | None, float]:
    command = [sys.executable, "-m", "pipeline.cli", "run", "--data", str(output / SPANS_FOLDER)]
    command += ["--output", str(output), "--window", str(window), "--no-report", *run_args]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = round(time.monotonic() - started, 1)
    summary_path = output / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if proc.returncode not in VERDICT_EXITS:
        sys.stderr.write(proc.stderr[-3000:])
    return proc.returncode, summary, seconds


def _row(span: SpanFile, code: int, summary: dict | None, seconds: float, serving: dict | None = None) -> dict:
    summary = summary or {}
    evaluation = summary.get("evaluation") or {}
    spans_read = (summary.get("input") or {}).get("spans") or {}
    pushed = summary.get("pushed_model")
    return {
        "span": span.label,
        "span_rows": span.rows,
        "span_frauds": span.frauds,
        "window": spans_read.get("window"),
        "window_rows": sum(c["rows"] for c in summary.get("splits", {}).values()),
        "exit_code": code,
        "status": summary.get("status"),
        "drift": st.drift_verdict(summary),
        "drift_exceeded": (summary.get("drift") or {}).get("exceeded", []),
        "test_pr_auc": (evaluation.get("overall") or {}).get("pr_auc"),
        "baseline": (evaluation.get("baseline") or {}).get("model_uri"),
        # The serving model's PR-AUC on this run's test split: what the change gate compared with.
        "baseline_pr_auc": ((evaluation.get("baseline") or {}).get("overall") or {}).get("pr_auc"),
        "blessed": summary.get("blessed", False),
        "pushed_version": os.path.basename(pushed) if pushed else None,
        "message": summary.get("message"),
        "seconds": seconds,
        # The model serving when the span arrived, scored on it before retraining: what the team would have seen.
        "served": serving,
    }


def _auc(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def table(rows: list[dict]) -> str:
    """The replay's rows as a fixed-width table. 'served' is the model serving when the span arrived and 'real P',
    'real R' and 'real AUC' its realized precision and recall at its threshold and PR-AUC on the span (scored before
    retraining, then joined with the span's labels), 'skew' its serving skew; PR-AUC is the new model's on its run's
    test split, 'blessed' the serving model's on the same split (what the change gate compared with)."""
    lines = [
        f"{'span':>5} {'rows':>7} {'frauds':>6} {'served':>10} {'real P':>6} {'real R':>6} {'real AUC':>8} "
        f"{'skew':>9} {'window':>11} {'trained on':>10} {'drift':>17} {'PR-AUC':>7} {'blessed':>7} {'pushed':>12} "
        f"{'seconds':>7}"
    ]
    for r in rows:
        window = "-" if not r["window"] else "-".join(dict.fromkeys([r["window"][0], r["window"][-1]]))
        auc = _auc(r["test_pr_auc"])
        served = r.get("served") or {}
        skew = ("past" if served.get("skew_exceeded") else "within") if served.get("skew_largest") else "-"
        lines.append(
            f"{r['span']:>5} {r['span_rows']:>7} {r['span_frauds']:>6} {served.get('model_version') or 'none':>10} "
            f"{_auc(served.get('precision')):>6} {_auc(served.get('recall')):>6} {_auc(served.get('pr_auc')):>8} "
            f"{skew:>9} {window:>11} {r['window_rows']:>10} "
            f"{r['drift']:>17} {auc:>7} {_auc(r['baseline_pr_auc']) if r['baseline'] else 'none':>7} "
            f"{(r['pushed_version'] or ('not blessed' if r['status'] == 'not_blessed' else r['status'] or '-')):>12} "
            f"{r['seconds']:>7.0f}"
        )
    return "\n".join(lines)


def replay(
    data: str,
    k: int,
    window: int,
    output: Path,
    run_args: list[str],
    say: Callable[[str], None] = print,
    dataset: str | None = None,
    days: float = 0,
) -> dict:
    """Cuts data into k spans (or spans of `days` days) and runs the pipeline once per span into output, by the
    dataset spec in the file `dataset` (the default one when None); returns what replay.json holds."""
    output.mkdir(parents=True, exist_ok=True)
    folder = output / SPANS_FOLDER
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} holds spans already; replay into a new --output folder")
    spec = dataset_spec.load(dataset) if dataset else contract.DEFAULT_DATASET
    header, parts = cut(data, k, spec, days)
    k = len(parts)
    run_args = [*run_args, "--dataset", os.path.abspath(dataset)] if dataset else run_args
    rows = []
    for number, part in enumerate(parts, start=1):
        span = write_span(folder, number, header, part, spec)
        say(f"[replay] span {span.label} arrived ({span.rows} rows, {span.frauds} frauds); running the pipeline ...")
        serving = served(output, span)
        rows.append(_row(span, *_run(output, window, run_args), serving))
        say(table(rows).splitlines()[-1] if len(rows) > 1 else table(rows))
    serving = output / "serving"
    versions = (
        sorted((p.name for p in serving.iterdir() if contract.is_version(p.name)), key=int) if serving.is_dir() else []
    )
    record = {"data": data, "spans": k, "days": days or None, "window": window, "run_args": run_args, "runs": rows}
    record["serving"] = versions
    (output / REPLAY_JSON).write_text(json.dumps(record, indent=2) + "\n")
    record["pages"] = _pages(output)
    return record


def _pages(output: Path):
    """The newest run's report and the history page of every run, written once after the last span (the runs
    themselves write none: --no-report), by the finish step every runner shares."""
    from pipeline.runners.finish import Pages, write_pages

    summary_path = output / "summary.json"
    if not summary_path.is_file():
        return Pages()
    return write_pages(json.loads(summary_path.read_text()), contract.OutputLayout(str(output)))
