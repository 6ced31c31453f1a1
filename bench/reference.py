"""The reference the pipeline is measured against: the tutorial's steps as one plain script, same split and model.

pandas reads the CSV; the split is the pipeline's time split (train: the oldest 64% by Time, eval: the next 16%,
test: the newest 20%); Time is dropped, Amount becomes log(Amount + 0.001), scikit-learn's StandardScaler is fitted
on train and the z-scores clipped to [-5, 5]; the tutorial's Keras model (Dense 16 relu, Dropout 0.5, sigmoid,
Adam 1e-3, output bias log(pos/neg)) trains with batch 2048, up to 100 epochs, early stopping on the eval split's
PR-AUC (patience 10, best weights restored), with Keras' own shuffling of the in-memory arrays.

With --dataset SPEC (another dataset, e.g. the simulated log): the same steps adapted to the spec's columns as a
team would write them in pandas: the time parsed (ISO-8601 with pandas), the label mapped by its positive value,
numeric features z-scored (log first for log_zscore) with the train mean imputed and a missing indicator, small
categorical features one-hot over the train split's top values, large ones (the spec's embedded ones) as an index
into a Keras Embedding beside the dense inputs.

Usage: python bench/reference.py --data FILE [--dataset SPEC] [--json OUT] [--seed 42]
Prints one JSON object: seconds per step, epochs, seconds per epoch, peak RSS and test PR-AUC / ROC-AUC.
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tf_keras as keras  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from compat.tensorflow import keras_runs_as_written  # noqa: E402
from trainer.model import metrics as model_metrics  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--dataset", help="a dataset spec (default: the ULB file's columns)")
    args = parser.parse_args()
    if args.dataset:
        return adapted(args)
    seconds = {}
    started = time.monotonic()

    t = time.monotonic()
    df = pd.read_csv(args.data)
    seconds["read"] = time.monotonic() - t

    t = time.monotonic()
    cut_eval, cut_test = np.quantile(df["Time"], [0.64, 0.80])
    parts = {
        "train": df[df["Time"] < cut_eval],
        "eval": df[(df["Time"] >= cut_eval) & (df["Time"] < cut_test)],
        "test": df[df["Time"] >= cut_test],
    }
    features = [c for c in df.columns if c not in ("Time", "Class")]

    def inputs(part):
        x = part[features].copy()
        x["Amount"] = np.log(x["Amount"] + 0.001)
        return x.to_numpy(np.float32)

    scaler = StandardScaler().fit(inputs(parts["train"]))
    xs = {k: np.clip(scaler.transform(inputs(v)), -5, 5).astype(np.float32) for k, v in parts.items()}
    ys = {k: v["Class"].to_numpy(np.float32) for k, v in parts.items()}
    seconds["preprocess"] = time.monotonic() - t

    t = time.monotonic()
    # As in the pipeline's Trainer, and as for the tutorial on Keras 3 by TensorFlow's own rule for keras.*: Keras's
    # code is traced as written, not transpiled by AutoGraph first (about 30 s; compat/tensorflow.py).
    keras_runs_as_written()
    keras.utils.set_random_seed(args.seed)
    pos = float(ys["train"].sum())
    neg = float(len(ys["train"]) - pos)
    model = keras.Sequential(
        [
            keras.layers.Dense(16, activation="relu", input_shape=(xs["train"].shape[1],)),
            keras.layers.Dropout(0.5, seed=args.seed),
            keras.layers.Dense(
                1, activation="sigmoid", bias_initializer=keras.initializers.Constant(np.log(pos / neg))
            ),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        # The same eight metrics the pipeline's Trainer computes every epoch, so an epoch costs the same.
        metrics=model_metrics(),
    )
    return fit_and_report(model, args, xs, ys, seconds, started, t)


def fit_and_report(model, args, xs: dict, ys: dict, seconds: dict, started: float, t: float) -> int:
    """Fits the compiled model on the train split with early stopping on the eval split's PR-AUC, scores the test
    split, prints (and with --json writes) the result."""
    stop = keras.callbacks.EarlyStopping(
        monitor="val_prc", mode="max", patience=args.patience, restore_best_weights=True, verbose=0
    )
    fit_started = time.monotonic()
    history = model.fit(
        xs["train"],
        ys["train"],
        batch_size=args.batch_size,
        epochs=args.max_epochs,
        validation_data=(xs["eval"], ys["eval"]),
        callbacks=[stop],
        shuffle=True,
        verbose=0,
    )
    fit_seconds = time.monotonic() - fit_started
    seconds["train"] = time.monotonic() - t

    t = time.monotonic()
    scores = model.predict(xs["test"], batch_size=8192, verbose=0).ravel()
    seconds["evaluate"] = time.monotonic() - t
    epochs = len(history.history["loss"])
    result = {
        "rows": {k: len(v) for k, v in ys.items()},
        "frauds": {k: int(v.sum()) for k, v in ys.items()},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "total_seconds": round(time.monotonic() - started, 2),
        "epochs": epochs,
        "best_epoch": int(np.argmax(history.history["val_prc"])) + 1,
        "seconds_per_epoch": round(fit_seconds / epochs, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "test_pr_auc": float(keras.metrics.AUC(curve="PR", num_thresholds=10000)(ys["test"], scores).numpy()),
        "test_average_precision": float(average_precision_score(ys["test"], scores)),
        "test_roc_auc": float(roc_auc_score(ys["test"], scores)),
    }
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def _prepared(df, spec, train_mask):
    """(dense float32 inputs, embedding indices, labels) of every row, fitted on the train rows: the numeric
    features, their missing indicators, the one-hot features, as the pipeline lays them out."""
    numeric, indicators, one_hot, indices = [], [], [], []
    for f in spec.numeric:
        x = pd.to_numeric(df[f.name], errors="coerce").to_numpy(np.float64)
        if f.transform == "log_zscore":
            x = np.log(x + f.log_offset)
        missing = np.isnan(x)
        if f.missing == "impute":
            x = np.where(missing, np.nanmean(x[train_mask]), x)
            indicators.append(missing.astype(np.float32))
        mean, std = x[train_mask].mean(), x[train_mask].std() or 1.0
        numeric.append(np.clip((x - mean) / std, -f.clip, f.clip))
    for f in spec.categorical:
        text = df[f.name].fillna("__missing__").astype(str)
        counts = text[train_mask].value_counts()
        top = counts[counts >= f.min_frequency].index[: f.top_k]
        index = pd.Series(range(len(top)), index=top).reindex(text).fillna(len(top)).to_numpy(np.int64)
        if f.embedded:
            indices.append((index, f.width, f.embedding_dim))
        else:
            one_hot += [(index == i).astype(np.float32) for i in range(f.width)]
    x = np.column_stack(numeric + indicators + one_hot).astype(np.float32)
    labels = np.array([spec.label_of(str(v)) or 0 for v in df[spec.label]], dtype=np.float32)
    return x, indices, labels


def _add_history(df, spec, times: np.ndarray) -> None:
    """The spec's history windows as columns of the frame, as a plain script would compute them once over the whole
    log: each entry's rows sorted by entity and time, every entity's times moved past the one before's by more than
    a window and its delay, so that one call of datasets.history.windows (NumPy: searchsorted and prefix sums)
    computes every entity's windows at once; a row without the entity gets the empty values. (The prefix sums run
    over all the entities' rows, so a mean may differ from the pipeline's in its last bits; the model's inputs are
    float32.)"""
    from datasets import history as history_lib

    labels = np.array([spec.label_of(str(v)) or 0 for v in df[spec.label]], dtype=np.int64)
    stored_times = np.floor(times) if spec.time_format != "seconds" else times.astype(np.float32).astype(np.float64)
    for item in spec.history:
        values = (
            pd.to_numeric(df[item.value]).to_numpy(np.float64).astype(np.float32).astype(np.float64)
            if item.value
            else np.zeros(len(df))
        )
        out = {name: np.array([v] * len(df), dtype=np.float64) for name, v in history_lib.missing(item).items()}
        entity = df[item.entity]
        rows = np.flatnonzero(entity.notna().to_numpy())
        if len(rows):
            codes = pd.factorize(entity.iloc[rows])[0]
            gap = np.ptp(stored_times[rows]) + max(item.window_seconds) + item.delay_seconds + 1
            by_entity = np.lexsort((stored_times[rows], codes))
            order = rows[by_entity]
            shifted = stored_times[order] + codes[by_entity] * gap
            found = history_lib.windows(item, shifted, values[order], labels[order])
            for name, column in found.items():
                out[name][order] = column
        for name, column in out.items():
            df[name] = column


def adapted(args) -> int:
    """The plain script adapted to another dataset's spec (the module docstring)."""
    from datasets import spec as dataset_spec

    spec = dataset_spec.load(args.dataset)
    seconds, started = {}, time.monotonic()
    t = time.monotonic()
    df = pd.read_csv(args.data, dtype=str, keep_default_na=False, na_values=[""])
    seconds["read"] = time.monotonic() - t
    t = time.monotonic()
    if spec.time_format == "seconds":
        times = df[spec.time].astype(float).to_numpy()
    else:
        times = pd.to_datetime(df[spec.time], utc=True).astype("int64").to_numpy() / 1e9
    if spec.history:
        _add_history(df, spec, times)
    seconds["history"] = time.monotonic() - t
    cut_eval, cut_test = np.quantile(times, [0.64, 0.80])
    split = np.where(times < cut_eval, 0, np.where(times < cut_test, 1, 2))
    x, indices, y = _prepared(df, spec, split == 0)
    parts = {name: split == i for i, name in enumerate(("train", "eval", "test"))}

    def inputs(mask):
        return [x[mask]] + [index[mask] for index, _, _ in indices]

    seconds["preprocess"] = time.monotonic() - t
    t = time.monotonic()
    keras_runs_as_written()
    keras.utils.set_random_seed(args.seed)
    pos = float(y[parts["train"]].sum())
    neg = float(parts["train"].sum() - pos)
    dense_in = keras.layers.Input(shape=(x.shape[1],))
    index_ins = [keras.layers.Input(shape=(), dtype="int64") for _ in indices]
    joined = [dense_in] + [
        keras.layers.Embedding(width, dim)(index_in) for index_in, (_, width, dim) in zip(index_ins, indices)
    ]
    hidden = keras.layers.Concatenate()(joined) if len(joined) > 1 else dense_in
    hidden = keras.layers.Dropout(0.5, seed=args.seed)(keras.layers.Dense(16, activation="relu")(hidden))
    out = keras.layers.Dense(1, activation="sigmoid", bias_initializer=keras.initializers.Constant(np.log(pos / neg)))
    model = keras.Model([dense_in, *index_ins], out(hidden))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(), metrics=model_metrics()
    )
    xs = {name: inputs(mask) for name, mask in parts.items()}
    ys = {name: y[mask] for name, mask in parts.items()}
    return fit_and_report(model, args, xs, ys, seconds, started, t)


if __name__ == "__main__":
    sys.exit(main())
