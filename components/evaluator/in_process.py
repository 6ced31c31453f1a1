"""The Evaluator on the in-process Beam runner: TFMA's metrics, slices, gates and files, with the per-example work
done on whole columns in this process whenever that gives TFMA's results.

TFMA runs an evaluation as a Beam pipeline that splits every batch into one extract an example, finds each
example's slice keys, and adds it to every metric's combiner of every slice it is in, a Python call each: most of a
run's Evaluator (docs/benchmarks.md), and twice the work on a retrain, which scores the serving model too. Here each
model's signatures (the serving one and the preprocessing ones the ModelSpec names, as TFMA calls them: a batch of
serialized examples) run on batches of the test split, and each slice's accumulators are made from the columns at
once, the same values TFMA's combiners add up one example at a time:
- an example count: TFMA adds 1.0 an example;
- a calibration histogram (AUC, PR-AUC, recall at precision): the bucket of each prediction by TFMA's formula, and
  per bucket the sums of labels, predictions and examples, added in the examples' order;
- a binary confusion matrix at given thresholds (the decision counts): TFMA's comparisons, counted;
- card precision@k (components/evaluator/metrics.py): the same DailyBest, given the same rows.
From the accumulators on, it is TFMA's own code: each combiner's `extract_output`, the derived metrics, the diffs
against the baseline, the validation against the thresholds, and TFMA's writers for the files (metrics, plots,
attributions, validations, the eval config) in a Beam pipeline of a few elements.

The slices are TFMA's: an example's values of a sliced feature are looked up in each model's transformed features,
then in its raw features, the distinct ones kept, bytes read as text (slicer_lib.SingleSliceSpec.generate_slices).

Anything else raises Declined and TFX's Beam executor runs instead (components/evaluator/component.py): another
runner, a metric or combiner not listed above, weights, sub keys, class weights or aggregations, cross slices,
feature values in a slicing spec, query keys, confidence intervals, a minimum slice size, a model other than a plain
SavedModel called through its signatures, a label or a prediction that is not a single 0/1 label and a single
number an example, a sliced feature that is not a single value an example, a NaN prediction, or a TFMA of another
version. tests/test_evaluator_in_process_unit.py compares each part with TFMA's code; tests/test_gates_e2e.py and
tests/test_your_data_e2e.py compare whole evaluations of real runs (a first run, retrains against a baseline, refused
models, the simulated log with card precision) with TFMA's Beam pipeline on the same inputs, file by file.
"""

import logging

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.utils import config_util, model_util

from compat import tfma_columns
from components.evaluator import metrics as card_metrics
from components.lib import examples_io

# Examples a batch: the signatures' per-call cost is small against it, and a batch of the full file's test split
# stays a few MB.
_BATCH = 1 << 13


class Declined(Exception):  # noqa: N818 - a decision, not a fault
    """The evaluation cannot be done here as TFMA would do it; TFX's executor runs instead."""


def _check_config(eval_config) -> None:
    if eval_config.cross_slicing_specs:
        raise Declined("cross slicing specs")
    if eval_config.options.compute_confidence_intervals.value:
        raise Declined("confidence intervals")
    if eval_config.options.min_slice_size.value > 1:
        raise Declined("a minimum slice size")
    if any(spec.query_key for spec in eval_config.metrics_specs):
        raise Declined("a query key")
    for spec in eval_config.slicing_specs:
        if spec.feature_values or spec.slice_keys_sql:
            raise Declined("a slicing spec with feature values or SQL")
    for spec in eval_config.model_specs:
        if model_util.get_model_type(spec) != constants.TF_GENERIC:
            raise Declined(f"model {spec.name!r} is not a plain SavedModel called through its signatures")
        if spec.example_weight_key or spec.example_weight_keys:
            raise Declined("example weights")
        if not spec.signature_name or any("@" in name for name in spec.preprocessing_function_names):
            raise Declined("a ModelSpec without a signature name, or a preprocessing function of TFMA's")


def _single_column(value, what: str) -> np.ndarray:
    """A batch's values of one tensor as a 1-D array, one value an example, or Declined."""
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise Declined(f"{what} is not one value an example (shape {array.shape})")
    return array


class _Model:
    """One model's signatures, as TFMA's ModelSignaturesDoFn calls them on a batch of serialized examples."""

    def __init__(self, spec, path: str):
        self.spec = spec
        loaded = tf.saved_model.load(path)
        self._loaded = loaded  # the signatures hold their variables through it
        names = [spec.signature_name, *spec.preprocessing_function_names]
        missing = [name for name in names if name not in loaded.signatures]
        if missing:
            raise Declined(f"model {spec.name!r} has no signature {missing}")
        self._signatures = {name: loaded.signatures[name] for name in names}
        for name, signature in self._signatures.items():
            inputs = signature.structured_input_signature[1]
            if len(inputs) != 1 or next(iter(inputs.values())).dtype != tf.string:
                raise Declined(f"signature {name} does not take one batch of serialized examples")
        # What the preprocessing signatures output: the transformed features TFMA looks a name up in first.
        self.transformed_names = {
            key for name in spec.preprocessing_function_names for key in self._signatures[name].structured_outputs
        }

    def __call__(self, records: tf.Tensor) -> tuple[dict, dict]:
        """(the serving signature's outputs, the preprocessing signatures' outputs merged) of a batch."""
        outputs, transformed = None, {}
        for name, signature in self._signatures.items():
            (input_name,) = signature.structured_input_signature[1]
            result = signature(**{input_name: records})
            if name == self.spec.signature_name:
                outputs = result
            else:
                transformed.update(result)
        return outputs, transformed


def _raw_columns(records: tf.Tensor, names: set[str]) -> dict[str, np.ndarray]:
    """The named raw features of a batch, one value an example (as tfx_bsl's decoder types them), or Declined."""
    if not names:
        return {}
    first = tf.train.Example.FromString(records[0].numpy())
    spec = {}
    for name in names:
        feature = first.features.feature.get(name)
        kind = feature.WhichOneof("kind") if feature is not None else None
        dtype = {"float_list": tf.float32, "int64_list": tf.int64, "bytes_list": tf.string}.get(kind)
        if dtype is None:
            raise Declined(f"raw feature {name!r} is not in the first example, or has no values")
        spec[name] = tf.io.VarLenFeature(dtype)
    try:
        parsed = tf.io.parse_example(records, spec)
    except tf.errors.InvalidArgumentError as e:
        raise Declined(f"a raw feature of another type in a later example ({e.message.splitlines()[0]})") from e
    columns = {}
    rows = int(records.shape[0])
    for name, sparse in parsed.items():
        counts = np.bincount(sparse.indices.numpy()[:, 0], minlength=rows)
        if np.any(counts != 1):
            raise Declined(f"raw feature {name!r} is not one value in every example")
        columns[name] = sparse.values.numpy()
    return columns


class _Columns:
    """A split's columns: each model's predictions and transformed features, the raw features read."""

    def __init__(self, models: list[_Model], files: list[str], raw_names: set[str], transformed_names: set[str]):
        per_model = {model.spec.name: {"outputs": {}, "transformed": {}} for model in models}
        raw: dict[str, list] = {name: [] for name in raw_names}
        for records in examples_io.record_batches(files, _BATCH):
            for name, column in _raw_columns(records, raw_names).items():
                raw[name].append(column)
            for model in models:
                outputs, transformed = model(records)
                store = per_model[model.spec.name]
                for key, value in outputs.items():
                    store["outputs"].setdefault(key, []).append(value)
                for key in transformed_names & set(transformed):
                    store["transformed"].setdefault(key, []).append(transformed[key])
        self.raw = {name: np.concatenate(parts) for name, parts in raw.items() if parts}
        self.outputs, self.transformed = {}, {}
        for name, store in per_model.items():
            self.outputs[name] = {k: _concat(v, f"output {k}") for k, v in store["outputs"].items()}
            self.transformed[name] = {k: _concat(v, f"feature {k}") for k, v in store["transformed"].items()}
        self.size = next(iter(next(iter(self.outputs.values())).values())).shape[0] if self.outputs else 0


def _concat(parts: list, what: str) -> np.ndarray:
    return np.concatenate([_single_column(part, what) for part in parts])


def _slice_masks(eval_config, columns: _Columns, models: list[_Model]) -> dict:
    """{slice key: boolean mask of its examples}, the overall slice first."""
    masks = {}
    for spec in eval_config.slicing_specs:
        names = sorted(spec.feature_keys)
        if not names:
            masks[()] = np.ones(columns.size, bool)
            continue
        per_column = [_feature_slices(name, columns, models) for name in names]
        # The Cartesian product of the columns' (value, mask) pairs, as TFMA's generate_slices takes it.
        combos = [((), np.ones(columns.size, bool))]
        for pairs in per_column:
            combos = [(key + (pair,), mask & m) for key, mask in combos for pair, m in pairs]
        for key, mask in combos:
            if mask.any():
                key = tuple(sorted(key))
                masks[key] = masks[key] | mask if key in masks else mask
    return masks


def _feature_slices(name: str, columns: _Columns, models: list[_Model]) -> list:
    """[((name, value), mask)] for each distinct value of a sliced feature: the models' transformed features where
    any has it (their values together), else the raw feature."""
    found = [columns.transformed[m.spec.name][name] for m in models if name in columns.transformed[m.spec.name]]
    if not found:
        if name not in columns.raw:
            raise Declined(f"sliced feature {name!r} is in neither the transformed nor the raw features")
        found = [columns.raw[name]]
    pairs = []
    for value in np.unique(np.concatenate(found)).tolist():  # SliceAccessor.get: np.unique(values).tolist()
        mask = np.zeros(columns.size, bool)
        for column in found:
            mask |= column == value
        pairs.append(((name, tf.compat.as_text(value) if isinstance(value, bytes) else value), mask))
    return pairs


def _labels_and_predictions(key, columns: _Columns, specs: dict) -> tuple[np.ndarray, np.ndarray]:
    """A metric key's labels and predictions, looked up as TFMA looks them up, as float64 arrays."""
    spec = specs[key.model_name] if len(specs) > 1 else next(iter(specs.values()))
    output = key.output_name
    label_key = spec.label_keys.get(output, "") if spec.label_keys else spec.label_key
    prediction_key = spec.prediction_keys.get(output, "") if spec.prediction_keys else spec.prediction_key
    transformed = columns.transformed[spec.name]
    if label_key in transformed:
        labels = transformed[label_key]
    elif label_key in columns.raw:
        labels = columns.raw[label_key]
    else:
        raise Declined(f"label {label_key!r} of output {output!r} not found")
    outputs = columns.outputs[spec.name]
    if prediction_key not in outputs:
        raise Declined(f"prediction {prediction_key!r} of output {output!r} not found")
    predictions = outputs[prediction_key]
    if labels.dtype.kind not in "biuf" or predictions.dtype.kind not in "iuf":
        raise Declined("a label or a prediction that is not a number")
    if not np.all((labels == 0) | (labels == 1)):
        raise Declined("a label other than 0 and 1")
    predictions = predictions.astype(np.float64)
    if np.isnan(predictions).any():
        raise Declined("a NaN prediction")
    return labels.astype(np.float64), predictions


def _daily_best(combiner, columns: _Columns, labels, predictions, mask):
    # CardPrecisionCombiner.add_input, a row at a time: the rows' cards and times are whole features (one each).
    accumulator = combiner.create_accumulator()
    cards, times = columns.raw[combiner.entity][mask], columns.raw[combiner.time][mask]
    for time, card, score, label in zip(times, cards, predictions, labels):
        if isinstance(card, bytes):
            card = card.decode("utf-8", "replace")
        accumulator.add(float(time), card, float(score), int(label))
    return accumulator


def _accumulator(combiner, kind: str, columns: _Columns, pairs: dict, mask: np.ndarray):
    if kind == tfma_columns.COUNT:
        return tfma_columns.count(combiner, int(np.count_nonzero(mask)))
    labels, predictions = pairs[_key(combiner, kind)]
    labels, predictions = labels[mask], predictions[mask]
    if kind == tfma_columns.HISTOGRAM:
        return tfma_columns.histogram(combiner, labels, predictions)
    if kind == tfma_columns.MATRIX:
        return tfma_columns.matrices(combiner, labels, predictions)
    return _daily_best(combiner, columns, labels, predictions, mask)


def _key(combiner, kind: str):
    return combiner.key if kind == tfma_columns.OWN else tfma_columns.key_of(combiner)


def _is_card_precision(combiner) -> bool:
    return isinstance(combiner, card_metrics.CardPrecisionCombiner)


def sliced_results(eval_config, models: list[_Model], files: list[str]) -> list:
    """[(slice key, {MetricKey or PlotKey or AttributionsKey: value})], as TFMA's evaluator makes them before it
    separates metrics, plots and attributions."""
    try:
        found = tfma_columns.computations(eval_config, own=_is_card_precision)
    except tfma_columns.Unsupported as e:
        raise Declined(str(e)) from e
    specs = {spec.name: spec for spec in eval_config.model_specs}
    raw_names = set()
    for combiner, kind in found.combiners:
        if kind == tfma_columns.OWN:
            raw_names |= {combiner.entity, combiner.time}
    sliced = {name for spec in eval_config.slicing_specs for name in spec.feature_keys}
    labels = {key for spec in specs.values() for key in [spec.label_key, *spec.label_keys.values()] if key}
    # Raw features where no model's transformed features have them (TFMA looks in the transformed ones first).
    raw_names |= {name for name in sliced | labels if not any(name in m.transformed_names for m in models)}
    columns = _Columns(models, files, raw_names, sliced | labels)
    if columns.size == 0:
        raise Declined("an empty split")
    # Each (model, output)'s labels and predictions, looked up and checked once for every slice and combiner.
    pairs = {}
    for combiner, kind in found.combiners:
        if kind != tfma_columns.COUNT:
            key = _key(combiner, kind)
            if key not in pairs:
                pairs[key] = _labels_and_predictions(key, columns, specs)
    baseline = model_util.get_baseline_model_spec(eval_config)
    results = []
    for slice_key, mask in _slice_masks(eval_config, columns, models).items():
        combined = {}
        for combiner, kind in found.combiners:
            combined.update(combiner.extract_output(_accumulator(combiner, kind, columns, pairs, mask)))
        results.append(tfma_columns.sliced_result(slice_key, combined, found, baseline.name if baseline else None))
    return results


def evaluate(eval_config, eval_shared_models: list, model_paths: dict, files: list[str], output_uri: str, pipeline):
    """The evaluation of the test split's `files` into `output_uri`, TFMA's files, or Declined before anything is
    written. `eval_config` as TFX's executor hands it to TFMA; `pipeline` a Beam pipeline (unused when Declined)."""
    if not tfma_columns.available():
        raise Declined("a TFMA of another version than compat/tfma_columns.py was written against")
    shared = eval_shared_models[0] if len(eval_shared_models) == 1 else eval_shared_models
    eval_config = tfma_columns.eval_config_for(eval_config, shared)
    config_util.verify_eval_config(eval_config)
    _check_config(eval_config)
    models = [_Model(spec, model_paths[spec.name]) for spec in eval_config.model_specs]
    results = sliced_results(eval_config, models, files)
    split = tfma_columns.by_key_type(results)
    writers = tfma.default_writers(output_path=output_uri, eval_shared_model=shared, eval_config=eval_config)
    with pipeline as p:
        evaluation = {
            key: p | f"Create[{key}]" >> beam.Create(values, reshuffle=False) for key, values in split.items()
        }
        evaluation[constants.VALIDATIONS_KEY] = evaluation[constants.METRICS_KEY] | "ValidateMetrics" >> beam.Map(
            metrics_validator.validate_metrics, eval_config
        )
        _ = evaluation | "WriteResults" >> tfma.WriteResults(writers=writers)
    logging.info("Evaluator: %d slices evaluated in process, written to %s", len(results), output_uri)
