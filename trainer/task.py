"""run_fn: the Trainer component loads it by dotted path (trainer.task.run_fn) and calls it with TFX's FnArgs.

Trains the tutorial's model on the train split (ExampleGen's raw examples through Transform's graph) with the
chosen imbalance strategy, stops early on the eval split's PR-AUC, and exports a SavedModel whose signatures take
serialized raw tf.Examples.
"""

import dataclasses
import functools
import json
import os
import time
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult
from tfx_bsl.public import tfxio

import contract
from datasets import spec as dataset_spec
from datasets.spec import DatasetSpec
from trainer import model as model_lib
from trainer import threshold as threshold_lib
from trainer import tuning
from trainer.hparams import HParams, ThresholdPolicy


def load_split(
    file_pattern,
    data_accessor,
    tf_transform_output,
    names=contract.MODEL_INPUTS,
    batch_size=contract.READ_BATCH_SIZE,
    label=contract.LABEL,
    through_accessor=False,
):
    """Reads a raw split (ExampleGen's) into memory through the Transform graph: (the named Transform outputs as one
    [n, inputs] float32 array in that order, labels as [n, 1] int64), in canonical_order. through_accessor: read
    the files through TFX's data accessor (raw_batches).

    Transform does not materialize its outputs (pipeline/definition/pipeline.py): the graph it wrote is applied here,
    batch by batch, as the serving signature applies it, and gives the same values to the bit as Transform's own
    pass.
    """
    layer = tf_transform_output.transform_features_layer()
    return canonical_order(
        *_read_split(
            file_pattern, data_accessor, tf_transform_output, layer, names, batch_size, label, through_accessor
        )
    )


def _read_split(
    file_pattern,
    data_accessor,
    tf_transform_output,
    layer,
    names,
    batch_size=contract.READ_BATCH_SIZE,
    label=contract.LABEL,
    through_accessor=False,
):
    """load_split's rows in the order the files give them, through `layer` (the graph's Keras layer)."""
    data = raw_batches(file_pattern, data_accessor, tf_transform_output, batch_size, through_accessor)
    xs, ys = [], []
    for raw in data:
        batch = layer(raw)
        rows = len(batch[label])
        # One column a name, or k for a one-hot categorical feature.
        xs.append(np.hstack([batch[name].numpy().reshape(rows, -1) for name in names]))
        ys.append(batch[label].numpy().reshape(-1, 1))
    if not ys:
        raise ValueError(f"no examples in {file_pattern}")
    # astype(copy=False): the split is not copied once more when it already has the type (it is float32).
    return np.concatenate(xs).astype(np.float32, copy=False), np.concatenate(ys).astype(np.int64, copy=False)


def raw_batches(
    file_pattern, data_accessor, tf_transform_output, batch_size=contract.READ_BATCH_SIZE, through_accessor=False
) -> tf.data.Dataset:
    """A split's raw examples, `batch_size` at a time, each batch a dict of the raw features' tensors, in the order
    of the files (sorted by name) and of their records.

    ExampleGen writes serialized tf.Examples in TFRecord files, gzipped where the name ends in .gz: they are read
    with TFRecordDataset and parsed by tf.io.parse_example on the raw feature spec, the parse the serving signature
    makes. TFX's data accessor (tfx_bsl's dataset) gives the same rows (interleaved when there are several files)
    but goes through its files a record at a time, several times slower (docs/benchmarks.md, "The Trainer's read
    and sort"); tests/test_trainer_e2e.py and tests/test_your_data_e2e.py compare the two ways to the bit. The
    accessor reads when through_accessor is set, where the pattern matches no file, and where the files mix
    gzipped and plain names (it refuses them).
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else file_pattern
    files = sorted(name for pattern in patterns for name in tf.io.gfile.glob(pattern))
    gzipped = {name.endswith(".gz") for name in files}
    if through_accessor or len(gzipped) != 1:  # no file, or gzipped and plain ones mixed
        return data_accessor.tf_dataset_factory(
            file_pattern,
            tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=1, shuffle=False),
            tf_transform_output.raw_metadata.schema,
        )
    spec = tf_transform_output.raw_feature_spec()
    records = tf.data.TFRecordDataset(files, compression_type="GZIP" if files[0].endswith(".gz") else "")
    return records.batch(batch_size).map(lambda serialized: tf.io.parse_example(serialized, spec))


def canonical_order(x: np.ndarray, y: np.ndarray):
    """Sorts the rows by their values, so the seeded shuffles see the same sequence whatever order the
    upstream Beam stages wrote the shards in (which varies between runs on large data)."""
    order = lexicographic_order([x[:, i] for i in range(x.shape[1])] + [y.ravel()])
    return x[order], y[order]


def lexicographic_order(keys: list[np.ndarray]) -> np.ndarray:
    """np.lexsort's order of the rows by keys[0], ties by keys[1], and so on (np.lexsort(keys[::-1])), rows tied on
    every key in their order: a stable sort of the first key, then np.lexsort of the rows it leaves tied alone, by
    their run of ties and the other keys (np.lexsort of all where over a quarter of the rows are tied). Much faster
    where the first key is a measurement with few ties (docs/benchmarks.md, "The Trainer's read and sort").

    Tied as np.lexsort ties them: values that compare equal (0.0 and -0.0), and NaNs with each other."""
    order = np.argsort(keys[0], kind="stable")
    if len(keys) == 1 or len(order) < 2:
        return order
    first = keys[0][order]
    tied = first[1:] == first[:-1]  # position i + 1 ties with position i
    if first.dtype.kind == "f":
        tied |= np.isnan(first[1:]) & np.isnan(first[:-1])
    in_a_tie = np.zeros(len(order), bool)
    in_a_tie[1:] |= tied
    in_a_tie[:-1] |= tied
    positions = np.flatnonzero(in_a_tie)
    if 4 * positions.size > len(order):  # a first key of few values: np.lexsort of everything is faster
        return np.lexsort(keys[::-1])
    if positions.size:
        run = np.cumsum(np.concatenate([[1], ~tied]))[positions]  # which run of ties, in the sorted order
        rows = order[positions]
        order[positions] = rows[np.lexsort([key[rows] for key in reversed(keys[1:])] + [run])]
    return order


@dataclasses.dataclass
class TrainingData:
    """What model.fit gets for a strategy, and the numbers that set it up.

    Without oversampling, model.fit takes the in-memory train arrays and shuffles them itself every epoch
    (train_stream is None); with it, train_stream is the endless balanced stream and steps_per_epoch its length.
    The eval split is always the arrays as they are, in order.
    """

    train_xy: tuple
    eval_xy: tuple
    train_stream: tf.data.Dataset | None
    steps_per_epoch: int | None
    class_weight: dict | None
    initial_bias: float
    pos: int
    neg: int

    def fit_args(self, batch_size: int) -> dict:
        """The data arguments of model.fit."""
        if self.train_stream is not None:
            train = {"x": self.train_stream}
        else:
            train = {"x": self.train_xy[0], "y": self.train_xy[1], "batch_size": batch_size, "shuffle": True}
        return {
            **train,
            "validation_data": self.eval_xy,
            "validation_batch_size": batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "class_weight": self.class_weight,
        }


def training_data(hparams: HParams, train_xy, eval_xy) -> TrainingData:
    """Sets up the strategy of hparams; only the train split is ever reweighted or oversampled.

    Args:
      hparams: the typed configuration.
      train_xy: (inputs, labels) of the train split; frauds and normal rows are counted here.
      eval_xy: (inputs, labels) of the eval split, for validation and early stopping.
    """
    x, y = train_xy
    pos = int(y.sum())
    neg = int(len(y) - pos)
    bias = model_lib.initial_bias(pos, neg)
    weights = None
    steps_per_epoch = None
    stream = None
    if hparams.strategy == "oversample":
        # Balanced batches make the prior 50/50, so the bias that matches it is 0.
        bias = 0.0
        stream = model_lib.oversampled_dataset(x, y, hparams.batch_size, hparams.seed)
        steps_per_epoch = model_lib.oversampled_steps_per_epoch(neg, hparams.batch_size)
    elif hparams.strategy == "class_weight":
        weights = model_lib.class_weights(pos, neg)
    return TrainingData(
        train_xy=train_xy,
        eval_xy=eval_xy,
        train_stream=stream,
        steps_per_epoch=steps_per_epoch,
        class_weight=weights,
        initial_bias=bias,
        pos=pos,
        neg=neg,
    )


def train(hparams: HParams, train_xy, eval_xy, layout: model_lib.InputLayout | None = None):
    """Fits the model with the strategy of hparams, stopping early on the eval split's PR-AUC; with an ensemble,
    fits each member so (seeds seed, seed+1, ...) and returns one model averaging their probabilities.

    layout: the input's columns (model_lib.input_layout); the default dataset's when None.

    Returns:
      (model, facts) where facts records the counts, bias, weights, per-epoch history and the best epoch (of the
      first member for an ensemble, with every member's in "members"; fit_seconds and epochs_run are totals).
    """
    if hparams.ensemble == 1:
        return _train_one(hparams, train_xy, eval_xy, layout)
    members, member_facts = [], []
    for k in range(hparams.ensemble):
        one = dataclasses.replace(hparams, seed=hparams.seed + k, ensemble=1)
        member, facts = _train_one(one, train_xy, eval_xy, layout)
        members.append(member)
        member_facts.append(facts)
    inputs = keras.layers.Input(shape=members[0].input_shape[1:], name="inputs", dtype=tf.float32)
    output = keras.layers.Average(name=contract.PROBABILITY_OUTPUT)([m(inputs) for m in members])
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(loss=keras.losses.BinaryCrossentropy(), metrics=model_lib.metrics())
    facts = dict(member_facts[0])
    facts["hparams"] = hparams.to_dict()
    facts["fit_seconds"] = round(sum(f["fit_seconds"] for f in member_facts), 2)
    facts["epochs_run"] = sum(f["epochs_run"] for f in member_facts)
    facts["members"] = [
        {k: f[k] for k in ("epochs_run", "best_epoch", "best_val_prc", "fit_seconds")} | {"seed": hparams.seed + i}
        for i, f in enumerate(member_facts)
    ]
    return model, facts


def _train_one(hparams: HParams, train_xy, eval_xy, layout: model_lib.InputLayout | None = None):
    keras.utils.set_random_seed(hparams.seed)
    tf.config.experimental.enable_op_determinism()
    data = training_data(hparams, train_xy, eval_xy)
    model = model_lib.build_model(hparams, data.initial_bias, layout)
    stop = keras.callbacks.EarlyStopping(
        monitor=f"val_{model_lib.EARLY_STOPPING_METRIC}",
        mode="max",
        patience=hparams.patience,
        restore_best_weights=True,
        verbose=0,
    )
    started = time.monotonic()
    history = model.fit(**data.fit_args(hparams.batch_size), epochs=hparams.max_epochs, callbacks=[stop], verbose=0)
    fit_seconds = time.monotonic() - started
    val = history.history[f"val_{model_lib.EARLY_STOPPING_METRIC}"]
    facts = {
        "hparams": hparams.to_dict(),
        # Wall time of model.fit alone (every epoch with its validation), for the benchmark's seconds per epoch.
        "fit_seconds": round(fit_seconds, 2),
        "train_rows": data.pos + data.neg,
        "train_frauds": data.pos,
        "eval_rows": len(eval_xy[1]),
        "eval_frauds": int(eval_xy[1].sum()),
        "initial_bias": data.initial_bias,
        "class_weight": {str(k): v for k, v in data.class_weight.items()} if data.class_weight else None,
        "steps_per_epoch": data.steps_per_epoch,
        "epochs_run": len(val),
        "best_epoch": int(np.argmax(val)) + 1,
        "best_val_prc": float(np.max(val)),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }
    return model, facts


def operating_threshold(policy: ThresholdPolicy, model, eval_xy, eval_days: float | None = None) -> dict:
    """Chooses the operating threshold on the eval split's predictions (see trainer.threshold.choose)."""
    x, y = eval_xy
    scores = model.predict(x, batch_size=contract.READ_BATCH_SIZE, verbose=0).ravel()
    return threshold_lib.choose(policy, y, scores, eval_days)


def span_days(times: np.ndarray) -> float:
    """How many days a split spans, from its first to its last Time (at least one second)."""
    return max(float(times.max() - times.min()), 1.0) / contract.SECONDS_PER_DAY


class _ServingModule(tf.Module):
    """Holds the model and the Transform layer so the exported signatures can track both."""

    def __init__(self, model, tf_transform_output, threshold: float, names=contract.MODEL_INPUTS, label=contract.LABEL):
        super().__init__()
        self.model = model
        self._names = tuple(names)
        self.threshold = tf.constant(threshold, tf.float32, name="operating_threshold")
        self.tft_layer = tf_transform_output.transform_features_layer()
        raw_spec = tf_transform_output.raw_feature_spec()
        self._raw_spec = raw_spec
        self.serving_spec = {k: v for k, v in raw_spec.items() if k != label}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.SERVING_INPUT)])
    def serve(self, examples):
        """Serialized raw tf.Examples as a client sends them (no label) -> fraud probability, and the decision
        (1 = flag as fraud) at the operating threshold chosen on the eval split."""
        return self._scores(tf.io.parse_example(examples, self.serving_spec))

    def _scores(self, raw: dict) -> dict:
        transformed = self.tft_layer(raw)
        probability = self.model(model_lib.stacked(transformed, self._names))
        decision = tf.cast(probability >= self.threshold, tf.int64)
        return {contract.PROBABILITY_OUTPUT: probability, contract.DECISION_OUTPUT: decision}

    def features_function(self):
        """The raw features by name, one [batch] tensor each, as TF Serving's JSON REST API sends them
        ({"instances": [{"Amount": 12.5, ...}]}, no base64-encoded examples) -> the outputs of serve(). A feature the
        schema lets be missing is missing where it is NaN (a number) or "" (text)."""
        names = sorted(self.serving_spec)
        specs = [tf.TensorSpec([None], self.serving_spec[n].dtype, name=n) for n in names]

        @tf.function(input_signature=specs)
        def serve_features(*values):
            raw = {}
            for name, value in zip(names, values):
                feature = self.serving_spec[name]
                if isinstance(feature, tf.io.VarLenFeature):
                    if value.dtype == tf.string:
                        present = tf.not_equal(value, "")
                    elif value.dtype.is_floating:
                        present = tf.logical_not(tf.math.is_nan(value))
                    else:
                        present = tf.ones_like(value, tf.bool)
                    rows = tf.where(present)
                    indices = tf.concat([rows, tf.zeros_like(rows)], axis=1)
                    shape = tf.stack([tf.shape(value, out_type=tf.int64)[0], tf.constant(1, tf.int64)])
                    raw[name] = tf.SparseTensor(indices, tf.boolean_mask(value, present), shape)
                else:
                    raw[name] = tf.reshape(value, [-1, *feature.shape])
            return self._scores(raw)

        self.serve_features = serve_features
        return serve_features

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.SERVING_INPUT)])
    def transformed_features(self, examples):
        """Serialized raw tf.Examples (label included) -> every Transform output; TFMA slices on these."""
        return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))


def export(
    model,
    tf_transform_output,
    serving_dir: str,
    facts: dict,
    operating: dict,
    names=contract.MODEL_INPUTS,
    spec: DatasetSpec = contract.DEFAULT_DATASET,
) -> None:
    """Saves the Keras model with the raw-example signatures (the model taking the named Transform outputs), and in
    assets.extra the training facts, the operating threshold (with the policy that chose it and its eval counts)
    and the dataset spec."""
    module = _ServingModule(model, tf_transform_output, operating["threshold"], names, spec.label)
    model.tft_layer = module.tft_layer  # tracked by the Keras SavedModel so the Transform assets are saved
    signatures = {
        contract.SERVING_SIGNATURE: module.serve.get_concrete_function(),
        contract.TRANSFORMED_FEATURES_SIGNATURE: module.transformed_features.get_concrete_function(),
        contract.FEATURES_SIGNATURE: module.features_function().get_concrete_function(),
    }
    model.save(serving_dir, save_format="tf", signatures=signatures)
    tf.io.gfile.makedirs(os.path.dirname(os.path.join(serving_dir, contract.OPERATING_THRESHOLD)))
    for name, content in ((contract.TRAINING_SUMMARY, facts), (contract.OPERATING_THRESHOLD, operating)):
        with tf.io.gfile.GFile(os.path.join(serving_dir, name), "w") as f:
            json.dump(content, f, indent=2)
    # The spec the model was trained by travels with it (and so with every version pushed of it), and the inputs of
    # the raw-features signature, for its warm-up requests.
    with tf.io.gfile.GFile(os.path.join(serving_dir, contract.DATASET_SPEC), "w") as f:
        f.write(spec.to_json())
    inputs = {name: feature.dtype.name for name, feature in sorted(module.serving_spec.items())}
    with tf.io.gfile.GFile(os.path.join(serving_dir, contract.FEATURES_INPUTS), "w") as f:
        json.dump(inputs, f, indent=2)


class Splits(NamedTuple):
    """What the Trainer and the Tuner read: the Transform output, the model's input layout and the dataset spec,
    the train and eval splits, and the days the eval split spans."""

    tf_transform_output: object
    layout: model_lib.InputLayout
    spec: DatasetSpec
    train_xy: tuple
    eval_xy: tuple
    eval_days: float


def _splits(fn_args, hparams: HParams) -> Splits:
    """The train and eval splits through one load of the Transform graph, and the days the eval split spans (the
    alert budget's), from its time column read in the same pass."""
    # The Trainer sets both; the Tuner only transform_graph_path (transform_output is deprecated).
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path or fn_args.transform_output)
    layer = tf_transform_output.transform_features_layer()
    spec = dataset_spec.of_config(fn_args.custom_config)
    layout = model_lib.input_layout(hparams, spec)

    def read(pattern, columns):
        return _read_split(pattern, fn_args.data_accessor, tf_transform_output, layer, columns, label=spec.label)

    train_xy = canonical_order(*read(fn_args.train_files, layout.names))
    # Time rides along as the eval split's last column and leaves before the sort: the rows are the same without it.
    x, y = read(fn_args.eval_files, (*layout.names, spec.time))
    return Splits(tf_transform_output, layout, spec, train_xy, canonical_order(x[:, :-1], y), span_days(x[:, -1]))


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """The Tuner's entry point: a random search over trainer.tuning.SEARCH_SPACE on the eval split's PR-AUC."""
    hparams = HParams.from_dict(fn_args.custom_config["hparams"])
    splits = _splits(fn_args, hparams)
    tuner = tuning.make_tuner(
        functools.partial(train, layout=splits.layout),
        hparams,
        splits.train_xy,
        splits.eval_xy,
        os.path.join(fn_args.working_dir, "trials"),
        fn_args.custom_config["max_trials"],
    )
    # The trials hold their data; the executor's tuner.search(**fit_kwargs) only needs KerasTuner kept quiet.
    return TunerFnResult(tuner=tuner, fit_kwargs={"verbose": 0})


def run_fn(fn_args: FnArgs) -> None:
    """The Trainer's entry point; with a Tuner upstream, its best values replace the searched hyperparameters."""
    hparams = tuning.tuned(
        HParams.from_dict(fn_args.custom_config["hparams"]), tuning.best_values(fn_args.hyperparameters)
    )
    policy = ThresholdPolicy.from_dict(fn_args.custom_config["threshold_policy"])
    splits = _splits(fn_args, hparams)
    model, facts = train(hparams, splits.train_xy, splits.eval_xy, splits.layout)
    operating = operating_threshold(policy, model, splits.eval_xy, splits.eval_days)
    names = splits.layout.names
    export(model, splits.tf_transform_output, fn_args.serving_model_dir, facts, operating, names, splits.spec)
