"""Benchmark: model quality on later, unseen transactions — the pipeline's Trainer against gradient-boosted trees.

Rolling-origin evaluation on the past file (default ../shared/data/creditcard_past.csv.gz, rows in time order): fold
k trains on the oldest START_k of the rows, stops early (and chooses the operating threshold) on the next EVAL share,
and is tested on the TEST share after that, which no step has seen. Per fold and seed it reports test PR-AUC
(average precision), ROC-AUC, the best recall at precision >= 0.8 on test, and the precision and recall that the
threshold chosen on eval reaches on test.

The pipeline side runs the project's own code, not a copy: the Transform is transform.preprocessing.preprocessing_fn
analyzed by TensorFlow Transform on the fold's train rows, applied through its transform graph; training is
trainer.task.train with HParams (a variant changes some of them), the threshold trainer.threshold.choose with
the default policy. The reference is XGBoost (a bench-only dependency: requirements-bench.txt) on the raw
features without Time, early-stopped on the fold's eval PR-AUC, seeded row and column subsampling.

Two fold designs (--design): "prefix" (the default) cuts the oldest 70/80/90/100% of the rows with the pipeline's own
64/16/20 time split, so each fold is a `fraud-pipeline run` on an older file and the last is the run on the whole
past file; "rolling" trains on the oldest 50/60/70/80%, evaluates on the next 10% and tests on the 10% after.

Usage: python bench/quality.py [--design prefix] [--variants default,wide] [--seeds 3] [--folds ...] [--json OUT]
"""

import argparse
import dataclasses
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import contract  # noqa: E402
from trainer.hparams import CANDIDATES  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "creditcard_past.csv.gz"
EVAL_SHARE = 0.1
TEST_SHARE = 0.1
MIN_PRECISION = 0.8
# The operating-threshold rules measured on each pipeline model's eval and test scores: the precision target
# MIN_PRECISION with the eval precision's Wilson lower bound at these z (ThresholdPolicy.confidence_z; 0 is the
# eval precision as it is). The headline columns use the pipeline's default z.
THRESHOLD_ZS = (0.0, 0.5, 1.0, 1.5, 2.0)

# Named changes to the default HParams: "default" is the pipeline's default model as it is, the others are what
# `fraud-pipeline compare` can put side by side (trainer.hparams.CANDIDATES).
VARIANTS: dict[str, dict] = {"default": {}, **CANDIDATES}
# Training settings measured here only (not compare candidates): smaller batches (four times the steps per epoch)
# and more patience before early stopping.
VARIANTS.update({"batch_512": {"batch_size": 512}, "patience_20": {"patience": 20}})


@dataclasses.dataclass
class Fold:
    name: str
    train: pd.DataFrame
    eval: pd.DataFrame
    test: pd.DataFrame


def folds(df: pd.DataFrame, starts: list[float]) -> list[Fold]:
    """Rolling origin by row position in time order: train [0, s), eval [s, s+EVAL), test [s+EVAL, s+EVAL+TEST)."""
    df = df.sort_values(contract.TIME, kind="stable").reset_index(drop=True)
    n = len(df)
    out = []
    for s in starts:
        a, b, c = (int(round(q * n)) for q in (s, s + EVAL_SHARE, min(1.0, s + EVAL_SHARE + TEST_SHARE)))
        name = f"train to {s:.0%}, eval to {s + EVAL_SHARE:.0%}, test to {min(1.0, s + EVAL_SHARE + TEST_SHARE):.0%}"
        out.append(Fold(name, df.iloc[:a], df.iloc[a:b], df.iloc[b:c]))
    return out


def prefix_folds(df: pd.DataFrame, ends: list[float]) -> list[Fold]:
    """The pipeline's own time split on growing prefixes: fold k is the oldest END_k of the rows, cut into train,
    eval and test in the shares of contract.SPLIT_BUCKETS (64/16/20), as `fraud-pipeline run` cuts the file it is
    given; the fold ending at 100% is exactly the run on the whole past file. Its test windows are twice the
    rolling design's 10%, so they hold more frauds; neighbouring folds' windows overlap."""
    df = df.sort_values(contract.TIME, kind="stable").reset_index(drop=True)
    total = sum(contract.SPLIT_BUCKETS.values())
    train_share = contract.SPLIT_BUCKETS["train"] / total
    eval_share = contract.SPLIT_BUCKETS["eval"] / total
    out = []
    for end in ends:
        n = int(round(end * len(df)))
        a, b = int(round(train_share * n)), int(round((train_share + eval_share) * n))
        name = f"oldest {end:.0%}: train to {a / len(df):.0%}, eval to {b / len(df):.0%}, test to {end:.0%}"
        out.append(Fold(name, df.iloc[:a], df.iloc[a:b], df.iloc[b:n]))
    return out


def metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    y = np.asarray(labels).ravel().astype(int)
    s = np.asarray(scores).ravel()
    precision, recall, _ = precision_recall_curve(y, s)
    at = recall[precision >= MIN_PRECISION]
    flagged = s >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    return {
        "pr_auc": float(average_precision_score(y, s)),
        "roc_auc": float(roc_auc_score(y, s)),
        "recall_at_p80": float(at.max()) if len(at) else 0.0,
        "precision_at_threshold": tp / int(flagged.sum()) if flagged.any() else float("nan"),
        "recall_at_threshold": tp / int(y.sum()),
        "test_frauds": int(y.sum()),
    }


class PipelineTransform:
    """The pipeline's preprocessing_fn, analyzed by TensorFlow Transform on a fold's train rows (Beam, direct
    runner), then applied to any rows through the transform graph, as the Trainer's inputs and the serving graph
    get them."""

    def __init__(self, train: pd.DataFrame, workdir: str):
        import apache_beam as beam
        import tensorflow_transform as tft
        import tensorflow_transform.beam as tft_beam
        from google.protobuf import text_format
        from tensorflow_metadata.proto.v0 import schema_pb2
        from tensorflow_transform.tf_metadata import dataset_metadata

        from transform.preprocessing import preprocessing_fn

        schema = text_format.Parse(Path(contract.SCHEMA_FILE).read_text(), schema_pb2.Schema())
        metadata = dataset_metadata.DatasetMetadata(schema)
        columns = {c: train[c].to_numpy() for c in contract.RAW_COLUMNS}
        instances = [
            {c: np.array([columns[c][i]], np.int64 if c == contract.LABEL else np.float32) for c in columns}
            for i in range(len(train))
        ]
        output = os.path.join(workdir, "transform_fn")
        with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"])) as p:
            with tft_beam.Context(temp_dir=os.path.join(workdir, "tmp")):
                # The rows go in as pickled chunks: beam.Create infers a type from every element it is given, and
                # dill pickles a closure slowly; both take minutes on 100,000 dicts.
                chunks = [pickle.dumps(instances[i : i + 5000]) for i in range(0, len(instances), 5000)]
                rows = p | beam.Create(chunks) | beam.FlatMap(pickle.loads)
                transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
                _ = transform_fn | tft_beam.WriteTransformFn(output)
        self.output = tft.TFTransformOutput(output)
        self.layer = self.output.transform_features_layer()

    def __call__(self, df: pd.DataFrame) -> dict:
        """Every Transform output for the rows, as numpy arrays."""
        import tensorflow as tf

        raw = {
            c: tf.constant(df[c].to_numpy().reshape(-1, 1), tf.int64 if c == contract.LABEL else tf.float32)
            for c in contract.RAW_COLUMNS
        }
        return {k: v.numpy() for k, v in self.layer(raw).items()}


def transformed_parts(fold: Fold, data: str) -> dict:
    """The fold's train, eval and test rows through the pipeline's Transform, kept in bench/results/quality_cache
    under a key of the data file, the fold and the Transform's code (a variant run after another reuses them)."""
    import hashlib

    code = (ROOT / "transform" / "preprocessing.py").read_bytes() + (ROOT / "contract.py").read_bytes()
    stat = os.stat(data)
    key = hashlib.sha256(code + f"{data}|{stat.st_size}|{stat.st_mtime_ns}|{fold.name}".encode()).hexdigest()[:16]
    path = ROOT / "bench" / "results" / "quality_cache" / f"{key}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    with tempfile.TemporaryDirectory() as workdir:
        started = time.monotonic()
        transform = PipelineTransform(fold.train, workdir)
        parts = {name: transform(getattr(fold, name)) for name in ("train", "eval", "test")}
        print(f"  Transform analyzed and applied in {time.monotonic() - started:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(parts))
    return parts


def pipeline_arrays(transformed: dict, model_inputs) -> tuple:
    x = np.hstack([transformed[n].reshape(-1, 1).astype(np.float32) for n in model_inputs])
    return x, transformed[contract.LABEL].reshape(-1, 1).astype(np.int64)


def training_arrays(parts: dict, model_inputs) -> tuple:
    """(train_xy, eval_xy, (test_x, test_y)) as the Trainer gets them: train and eval in canonical order."""
    from trainer import task

    train_xy = task.canonical_order(*pipeline_arrays(parts["train"], model_inputs))
    eval_xy = task.canonical_order(*pipeline_arrays(parts["eval"], model_inputs))
    return train_xy, eval_xy, pipeline_arrays(parts["test"], model_inputs)


def run_pipeline_model(parts: dict, variant: dict, seeds: list[int]) -> list[dict]:
    """Trains and tests one variant on a fold's transformed parts (train, eval, test), once per seed."""
    from trainer import model as model_lib
    from trainer import task
    from trainer.hparams import HParams

    results = []
    for seed in seeds:
        hparams = dataclasses.replace(HParams(), seed=seed, **variant)
        train_xy, eval_xy, (test_x, test_y) = training_arrays(parts, model_lib.model_inputs(hparams))
        started = time.monotonic()
        model, facts = task.train(hparams, train_xy, eval_xy)
        seconds = time.monotonic() - started
        eval_scores = model.predict(eval_xy[0], batch_size=contract.READ_BATCH_SIZE, verbose=0).ravel()
        scores = model.predict(test_x, batch_size=contract.READ_BATCH_SIZE, verbose=0).ravel()
        results.append(
            {"seed": seed, "seconds": seconds, "epochs": facts["epochs_run"]}
            | threshold_rules(eval_xy[1], eval_scores, test_y, scores)
        )
    return results


def threshold_rules(eval_labels, eval_scores, test_labels, test_scores) -> dict:
    """metrics() at the threshold the default policy chooses on eval, and under "rules" the test precision and
    recall at the threshold chosen with each z of THRESHOLD_ZS."""
    from trainer.hparams import ThresholdPolicy
    from trainer.threshold import choose, confusion

    rules = {}
    for z in THRESHOLD_ZS:
        threshold = choose(ThresholdPolicy(confidence_z=z), eval_labels, eval_scores)["threshold"]
        at = confusion(test_labels, test_scores, threshold)
        rules[f"{z:g}"] = {"precision": at["precision"], "recall": at["recall"]}
    default = choose(ThresholdPolicy(), eval_labels, eval_scores)["threshold"]
    return metrics(test_labels, test_scores, default) | {"rules": rules}


def run_tuned(parts: dict, trials: int, seeds: list[int], workdir: str) -> list[dict]:
    """The pipeline's Tuner search (trainer.tuning.make_tuner: KerasTuner random search of `trials` trials on the
    fold's eval PR-AUC, seed 42), then the best values trained and tested once per seed as the Trainer would."""
    from trainer import model as model_lib
    from trainer import task, tuning
    from trainer.hparams import HParams

    train_xy, eval_xy, _ = training_arrays(parts, model_lib.model_inputs(HParams()))
    started = time.monotonic()
    tuner = tuning.make_tuner(task.train, HParams(), train_xy, eval_xy, workdir, trials)
    tuner.search(verbose=0)
    best = tuner.get_best_hyperparameters()[0].values
    searched = time.monotonic() - started
    print(f"  tuned in {searched:.0f} s: {best}", flush=True)
    results = run_pipeline_model(parts, best, seeds)
    for r in results:
        r["tuned"] = dict(best)
        r["search_seconds"] = searched
    return results


def run_tfdf_gbt(parts: dict, seeds: list[int]) -> list[dict]:
    """TensorFlow Decision Forests' gradient-boosted trees on the same Transform outputs the default network gets,
    early-stopped on the fold's eval rows (TF-DF's own early stopping on validation loss), threshold as the
    pipeline chooses it. A bench-only dependency (requirements-bench.txt)."""
    import tensorflow as tf
    import tensorflow_decision_forests as tfdf

    from trainer import model as model_lib
    from trainer.hparams import HParams

    inputs = model_lib.model_inputs(HParams())
    (x, y), (ex, ey), (tx, ty) = (pipeline_arrays(parts[name], inputs) for name in ("train", "eval", "test"))

    def dataset(features, labels):
        return tf.data.Dataset.from_tensor_slices((features, labels.ravel())).batch(8192)

    results = []
    for seed in seeds:
        started = time.monotonic()
        model = tfdf.keras.GradientBoostedTreesModel(
            num_trees=1000, random_seed=seed, early_stopping="LOSS_INCREASE", verbose=0
        )
        model.fit(dataset(x, y), validation_data=dataset(ex, ey), verbose=0)
        seconds = time.monotonic() - started
        eval_scores = model.predict(ex, batch_size=8192, verbose=0).ravel()
        scores = model.predict(tx, batch_size=8192, verbose=0).ravel()
        results.append(
            {"seed": seed, "seconds": seconds, "epochs": int(model.make_inspector().num_trees())}
            | threshold_rules(ey.ravel(), eval_scores, ty, scores)
        )
    return results


def run_reference(fold: Fold, seeds: list[int]) -> list[dict]:
    import xgboost as xgb

    features = [c for c in contract.RAW_FLOAT_FEATURES if c != contract.TIME]

    def xy(df):
        return df[features].to_numpy(np.float32), df[contract.LABEL].to_numpy()

    (x, y), (ex, ey), (tx, ty) = xy(fold.train), xy(fold.eval), xy(fold.test)
    results = []
    for seed in seeds:
        started = time.monotonic()
        model = xgb.XGBClassifier(
            n_estimators=2000,
            learning_rate=0.05,
            max_depth=6,
            subsample=0.8,
            colsample_bytree=0.8,
            eval_metric="aucpr",
            early_stopping_rounds=100,
            tree_method="hist",
            n_jobs=2,
            random_state=seed,
        )
        model.fit(x, y, eval_set=[(ex, ey)], verbose=False)
        seconds = time.monotonic() - started
        # The operating threshold as the pipeline chooses it, on the eval split.
        eval_scores = model.predict_proba(ex)[:, 1]
        scores = model.predict_proba(tx)[:, 1]
        results.append(
            {"seed": seed, "seconds": seconds, "epochs": int(model.best_iteration) + 1}
            | threshold_rules(ey, eval_scores, ty, scores)
        )
    return results


KEYS = ("pr_auc", "roc_auc", "recall_at_p80", "precision_at_threshold", "recall_at_threshold")


def summary(rows: list[dict]) -> dict:
    out = {}
    for k in KEYS + ("seconds", "epochs"):
        values = np.array([r[k] for r in rows], float)
        out[k] = (float(np.nanmean(values)), float(np.nanstd(values)))
    return out


def paired(model_rows: list[dict], reference_rows: list[dict], key: str) -> tuple[float, float]:
    """Per fold (mean over seeds) model minus reference: the mean and standard deviation over folds."""
    by_fold = {}
    for side, rows in (("m", model_rows), ("r", reference_rows)):
        for r in rows:
            by_fold.setdefault(r["fold"], {}).setdefault(side, []).append(r[key])
    diffs = np.array([np.mean(v["m"]) - np.mean(v["r"]) for v in by_fold.values()])
    return float(diffs.mean()), float(diffs.std())


def seed_noise(rows: list[dict], key: str) -> tuple[float, float]:
    """What a retrain on the same data moves a metric by: the standard deviation over seeds within a fold (mean
    over folds), and the largest drop from one seed to another within a fold (over folds)."""
    by_fold = {}
    for r in rows:
        by_fold.setdefault(r["fold"], []).append(r[key])
    std = float(np.mean([np.std(v) for v in by_fold.values()]))
    drop = float(max(max(v) - min(v) for v in by_fold.values()))
    return std, drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--variants", default="default", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--design",
        choices=("prefix", "rolling"),
        default="prefix",
        help="prefix: the pipeline's 64/16/20 time split on the oldest 70/80/90/100%% of the rows (the last fold is "
        "the run on the whole file); rolling: train to each of --folds, eval and test the next 10%% each",
    )
    parser.add_argument(
        "--folds",
        default=None,
        help="prefix ends (default 0.7,0.8,0.9,1.0) or rolling train shares (default 0.5,0.6,0.7,0.8)",
    )
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--tune", type=int, default=0, metavar="TRIALS", help="also the Tuner's search (this many trials) per fold"
    )
    parser.add_argument(
        "--tfdf", action="store_true", help="also TF Decision Forests' gradient-boosted trees on the Transform outputs"
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "quality.json"))
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    seeds = [42 + i for i in range(args.seeds)]
    df = pd.read_csv(args.data)
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    if args.tune:
        rows["tuned"] = []
    if args.tfdf:
        rows["tfdf_gbt"] = []
    if not args.no_reference:
        rows["xgboost"] = []
    if args.folds is None:
        args.folds = "0.7,0.8,0.9,1.0" if args.design == "prefix" else "0.5,0.6,0.7,0.8"
    cut = prefix_folds if args.design == "prefix" else folds
    for fold in cut(df, [float(s) for s in args.folds.split(",")]):
        print(
            f"# {fold.name}: {len(fold.train):,} / {len(fold.eval):,} / {len(fold.test):,} rows, "
            f"{int(fold.test[contract.LABEL].sum())} test frauds",
            flush=True,
        )
        if not args.no_reference:
            for r in run_reference(fold, seeds):
                rows["xgboost"].append({"fold": fold.name, **r})
                print(f"  xgboost seed {r['seed']}: PR-AUC {r['pr_auc']:.4f}", flush=True)
        parts = transformed_parts(fold, args.data)
        for v in variants:
            for r in run_pipeline_model(parts, VARIANTS[v], seeds):
                rows[v].append({"fold": fold.name, **r})
                print(f"  {v} seed {r['seed']}: PR-AUC {r['pr_auc']:.4f}", flush=True)
        if args.tune:
            with tempfile.TemporaryDirectory() as workdir:
                for r in run_tuned(parts, args.tune, seeds, workdir):
                    rows["tuned"].append({"fold": fold.name, **r})
                    print(f"  tuned seed {r['seed']}: PR-AUC {r['pr_auc']:.4f}", flush=True)
        if args.tfdf:
            for r in run_tfdf_gbt(parts, seeds):
                rows["tfdf_gbt"].append({"fold": fold.name, **r})
                print(f"  tfdf_gbt seed {r['seed']}: PR-AUC {r['pr_auc']:.4f}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))
    n_folds = len(args.folds.split(","))
    print(f"\n{n_folds} folds x {args.seeds} seeds; mean ± standard deviation over the {n_folds * args.seeds} runs")
    print(
        "| model | PR-AUC | ROC-AUC | recall at P>=0.8 | test precision at eval threshold | test recall at it | "
        "s per fit | epochs/trees |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in rows.items():
        s = summary(rs)
        cells = " | ".join(f"{s[k][0]:.4f} ± {s[k][1]:.4f}" for k in KEYS)
        print(f"| {name} | {cells} | {s['seconds'][0]:.0f} | {s['epochs'][0]:.0f} |")
    if "xgboost" in rows:
        print("\nPaired by fold (mean over seeds), model minus xgboost: mean ± standard deviation over folds")
        print("| model | PR-AUC | recall at P>=0.8 |")
        print("|---|---|---|")
        for name in [n for n in rows if n != "xgboost"]:
            cells = " | ".join(
                "{:+.4f} ± {:.4f}".format(*paired(rows[name], rows["xgboost"], k)) for k in ("pr_auc", "recall_at_p80")
            )
            print(f"| {name} | {cells} |")
    print("\nRetrain noise (same fold, another seed): standard deviation over seeds, mean over folds; largest gap")
    print("| model | PR-AUC std | PR-AUC largest gap | recall at P>=0.8 std | its largest gap |")
    print("|---|---|---|---|---|")
    for name, rs in rows.items():
        (a, b), (c, d) = seed_noise(rs, "pr_auc"), seed_noise(rs, "recall_at_p80")
        print(f"| {name} | {a:.4f} | {b:.4f} | {c:.4f} | {d:.4f} |")
    print(
        "\nOperating threshold rules: the precision target 0.8 on eval with the eval precision's Wilson lower bound "
        "at z (--confidence-z); test precision and recall at the threshold chosen so, mean ± standard deviation"
    )
    print("| model | " + " | ".join(f"z = {z:g}" for z in THRESHOLD_ZS) + " |")
    print("|---|" + "---|" * len(THRESHOLD_ZS))
    for name, rs in rows.items():
        cells = []
        for z in THRESHOLD_ZS:
            at = [r["rules"][f"{z:g}"] for r in rs if "rules" in r]
            p, rec = (np.array([a[k] for a in at], float) for k in ("precision", "recall"))
            cells.append(f"P {np.nanmean(p):.3f} ± {np.nanstd(p):.3f}, R {np.nanmean(rec):.3f}" if at else "")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nPer fold (mean over seeds): PR-AUC")
    names = list(rows)
    print("| fold | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for fold_name in dict.fromkeys(r["fold"] for r in rows[names[0]]):
        cells = " | ".join(f"{np.mean([r['pr_auc'] for r in rows[n] if r['fold'] == fold_name]):.4f}" for n in names)
        print(f"| {fold_name} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
