"""Benchmark: what the history windows bring, through the pipeline, on the simulated log, beside a plain script.

Writes the simulated log (`fraud-pipeline simulate`, default --days 90 --customers 2000 --terminals 2000 --seed 3,
the sizes issue 52 measured at), then runs `fraud-pipeline run` on it twice, with the same split and seed: with the
spec as it is (datasets/simulated/dataset.yaml, its history section: the Fraud Detection Handbook's windows) and
with a copy of it without the history section (and its schema without those features). Each run's own time split
(64/16/20 by time) holds out the newest days as its test split. For each run, on that test split:

- PR-AUC (average precision) and ROC AUC of the run's trained model (its Trainer's serving signature on the test
  split's examples, blessed or not);
- card precision@100 a day, the Handbook's metric: each day, the 100 customers with the highest score of that day
  (their highest over the day's transactions), and the share of them that had a fraud that day; the mean over the
  test days (the Handbook also drops the cards already found compromised; this does not);
- the plain script: scikit-learn's HistGradientBoostingClassifier and a logistic regression on the same examples'
  numeric features (the history ones included when the run has them), trained on the train and eval splits.

Usage: python bench/history_lift.py [--days 90 --customers 2000 --terminals 2000 --seed 3] [--keep DIR] [--json OUT]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

import contract  # noqa: E402
from components.lib.card_precision import card_precision_at_k  # noqa: E402
from datasets import spec as dataset_spec  # noqa: E402

CLI = Path(sys.executable).parent / "fraud-pipeline"
SPEC = ROOT / "datasets" / "simulated" / "dataset.yaml"
K = 100
DAY = 86400


def without_history(folder: Path) -> Path:
    """A copy of the simulated spec without its history section (nor drift thresholds of its features), its schema
    without those features: the row's own columns only (the terminal is an entity, not a model input)."""
    spec = dataset_spec.load(str(SPEC))
    raw = yaml.safe_load(SPEC.read_text())
    raw.pop("history")
    overrides = raw.get("drift", {}).get("features") or {}
    raw["drift"]["features"] = {k: v for k, v in overrides.items() if k not in set(spec.history_features)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse((SPEC.parent / spec.schema).read_text(), schema_pb2.Schema())
    kept = [f for f in schema.feature if f.name not in set(spec.history_features)]
    del schema.feature[:]
    schema.feature.extend(kept)
    (folder / spec.schema).write_text(text_format.MessageToString(schema))
    return folder / "dataset.yaml"


def run(spec_path: Path, data: Path, output: Path) -> tuple[dict, float, float]:
    """The run's summary, its wall time and its ExampleGen's time (where the windows are computed)."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(CLI), "run", "--dataset", str(spec_path), "--data", str(data), "--output", str(output)],
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    summary = json.loads((output / "summary.json").read_text())
    if summary.get("artifacts", {}).get("model") is None:
        raise SystemExit(f"the run trained no model (exit {proc.returncode}): {proc.stderr[-2000:]}")
    example_gen = re.search(r"finished CsvExampleGen \(([\d.]+) s\)", proc.stdout + proc.stderr)
    return summary, seconds, float(example_gen[1]) if example_gen else float("nan")


def read_split(examples: str, split: str, spec) -> tuple[list[bytes], dict]:
    """The split's serialized examples and their columns (numbers as float64, text as str, None where missing)."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(examples, f"Split-{split}", "*")))
    serialized = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    columns = {c: [] for c in (*spec.features, spec.label)}
    for raw in serialized:
        feature = tf.train.Example.FromString(raw).features.feature
        for name, column in columns.items():
            f = feature[name] if name in feature else None
            values = (list(f.float_list.value) or list(f.int64_list.value) or list(f.bytes_list.value)) if f else []
            value = values[0] if values else None
            column.append(value.decode() if isinstance(value, bytes) else value)
    return serialized, columns


def measures(labels: np.ndarray, scores: np.ndarray, days: np.ndarray, cards: list) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "pr_auc": float(average_precision_score(labels, scores)),
        "roc_auc": float(roc_auc_score(labels, scores)),
        # The Evaluator's and outcomes' definition (components/lib/card_precision.py), on whole days.
        f"card_precision_at_{K}": card_precision_at_k(days * DAY, cards, labels, scores, K),
    }


def evaluate(summary: dict, spec) -> dict:
    import tensorflow as tf

    examples, model = summary["artifacts"]["examples"], summary["artifacts"]["model"]
    serialized, test = read_split(examples, "test", spec)
    labels = np.array(test[spec.label], dtype=np.int64)
    days = np.floor(np.array(test[spec.time], dtype=np.float64) / DAY)
    cards = test["customer_id"]
    serve = tf.saved_model.load(os.path.join(model, "Format-Serving")).signatures[contract.SERVING_SIGNATURE]
    scores = np.concatenate(
        [
            serve(**{contract.SERVING_INPUT: tf.constant(serialized[i : i + 4096])})[contract.PROBABILITY_OUTPUT]
            .numpy()
            .ravel()
            for i in range(0, len(serialized), 4096)
        ]
    )
    out = {"pipeline": measures(labels, scores, days, cards), "test_rows": len(labels)}
    out.update(test_frauds=int(labels.sum()), test_days=int(len(np.unique(days))))

    # The plain script: the examples' numeric features (a missing one as the train mean) and the categorical ones
    # as codes, the same rows.
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    parts = [read_split(examples, s, spec)[1] for s in ("train", "eval")]
    train = {c: sum((p[c] for p in parts), []) for c in parts[0]}
    numeric = [f.name for f in spec.numeric]
    categorical = [f.name for f in spec.categorical if f.name != "terminal_id"]

    def matrix(columns, codes):
        x = [np.array([np.nan if v is None else v for v in columns[c]], dtype=np.float64) for c in numeric]
        x += [np.array([codes[c].get(v, -1) for v in columns[c]], dtype=np.float64) for c in categorical]
        return np.column_stack(x)

    codes = {c: {v: i for i, v in enumerate(sorted({v for v in train[c] if v is not None}))} for c in categorical}
    x_train, y_train = matrix(train, codes), np.array(train[spec.label])
    x_test = matrix(test, codes)
    boosted = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train)
    out["plain_boosting"] = measures(labels, boosted.predict_proba(x_test)[:, 1], days, cards)
    means = np.nanmean(x_train, axis=0)
    fill = lambda x: np.where(np.isnan(x), means, x)  # noqa: E731
    scaler = StandardScaler().fit(fill(x_train))
    logistic = LogisticRegression(max_iter=2000).fit(scaler.transform(fill(x_train)), y_train)
    out["plain_logistic"] = measures(labels, logistic.predict_proba(scaler.transform(fill(x_test)))[:, 1], days, cards)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--terminals", type=int, default=2000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--keep", help="keep the log and the runs' outputs in this folder")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="history-lift-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "log.csv.gz"
    if not data.exists():
        sizes = ["--days", args.days, "--customers", args.customers, "--terminals", args.terminals, "--seed", args.seed]
        partial = folder / "log.partial.csv.gz"  # renamed when whole: a run stopped midway leaves no half file
        subprocess.run([str(CLI), "simulate", *map(str, sizes), "--to", str(partial)], check=True)
        partial.rename(data)
    results = {}
    for name, spec_path in (("without windows", without_history(folder / "plain-spec")), ("with windows", SPEC)):
        output = folder / name.replace(" ", "-")
        shutil.rmtree(output, ignore_errors=True)
        print(f"running the pipeline {name} ...", flush=True)
        summary, seconds, example_gen = run(spec_path, data, output)
        results[name] = {**evaluate(summary, dataset_spec.load(str(spec_path))), "run_seconds": seconds}
        results[name]["example_gen_seconds"] = example_gen
        results[name]["status"] = summary.get("status")
    print()
    print(f"simulated log: --days {args.days} --customers {args.customers} --terminals {args.terminals} "
          f"--seed {args.seed}; test split (the newest 20% by time) of each run")  # fmt: skip
    print(f"| features | model | test PR-AUC | ROC AUC | card precision@{K} a day | run (s) | ExampleGen (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        for model in ("pipeline", "plain_boosting", "plain_logistic"):
            m = r[model]
            when = f"{r['run_seconds']:.0f} | {r['example_gen_seconds']:.0f}" if model == "pipeline" else " | "
            print(
                f"| {name} | {model.replace('_', ' ')} | {m['pr_auc']:.3f} | {m['roc_auc']:.3f} | "
                f"{m[f'card_precision_at_{K}']:.3f} | {when} |"
            )
    r = results["with windows"]
    print(f"test split: {r['test_rows']:,} rows, {r['test_frauds']} frauds, {r['test_days']} days")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
