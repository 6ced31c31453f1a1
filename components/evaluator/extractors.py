"""The Evaluator's TFMA extractors: TFMA's defaults, with the extracts trimmed to what slicing reads before unbatching.

TFMA splits every batched extract into one dict per example before slicing and metrics (its UnbatchExtractor), and
by default each carries every raw feature, every model's every Transform output and the serialized example: here some
100 arrays an example on a retrain, for metrics that read the labels and predictions and slices that read two
features. The trim keeps the features the EvalConfig's slicing specs name (raw or transformed, every model's) and
those its card precision metric reads (components/evaluator/metrics.py), and drops the rest, so the per-example
work is the part that is used. The labels, predictions and example weights were taken out of the features by the
extractors before it, so nothing a metric reads is dropped.

TFX's Evaluator takes these through its `custom_extractors` hook (components.evaluator.component.Evaluator passes
this module as its module_path by default); Beam workers import it from the installed project, as they do the Transform
module.
"""

import copy
from collections.abc import Mapping

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.extractors import extractor, slice_key_extractor, unbatch_extractor
from tensorflow_model_analysis.utils import util

from compat import tfma as tfma_compat
from components.evaluator import metrics

TRIM_STAGE_NAME = "TrimExtractsToSlicedFeatures"


def sliced_features(eval_config) -> frozenset:
    """Every feature a slicing spec or cross-slicing spec of the EvalConfig names."""
    specs = list(eval_config.slicing_specs)
    for cross in eval_config.cross_slicing_specs:
        specs += [cross.baseline_spec, *cross.slicing_specs]
    return frozenset(name for spec in specs for name in (*spec.feature_keys, *spec.feature_values))


def kept_features(eval_config) -> frozenset:
    """What the trim keeps: the sliced features and those the metrics read."""
    return sliced_features(eval_config) | metrics.features_read(eval_config)


def _kept(features, names: frozenset) -> dict:
    # A multi-model evaluation keys each model's Transform outputs by the model's name.
    kept = {}
    for key, value in features.items():
        if isinstance(value, Mapping):
            kept[key] = {name: column for name, column in value.items() if name in names}
        elif key in names:
            kept[key] = value
    return kept


def trim(batch: dict, names: frozenset) -> dict:
    """A batched extract with only the named features (raw and transformed) and without the serialized examples."""
    trimmed = {key: value for key, value in batch.items() if key != constants.INPUT_KEY}
    for key in (constants.FEATURES_KEY, constants.TRANSFORMED_FEATURES_KEY):
        if isinstance(trimmed.get(key), Mapping):
            trimmed[key] = _kept(trimmed[key], names)
    return trimmed


# Distinct values of the sliced features whose slice keys an extractor keeps (more are computed, not kept).
_SLICE_MEMO_SIZE = 10_000


def _memo_key(value):
    """A hashable key equal for equal feature values (numpy arrays, None, dicts of them), else None."""
    if value is None:
        return ()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.ndarray):
        items = [_memo_key(v) if not isinstance(v, (bytes, str)) else (type(v).__name__, v) for v in value.ravel()]
        return None if None in items else ("O", value.shape, tuple(items))
    if isinstance(value, Mapping):
        items = [(k, _memo_key(v)) for k, v in sorted(value.items())]
        return None if any(v is None for _, v in items) else tuple(items)
    return None


class SliceKeysOfSameValues(slice_key_extractor.ExtractSliceKeysFn):
    """TFMA's per-example slice key extraction, computed once for each distinct value of the features it reads.

    An example's slice keys are a function of its features (raw and transformed; after the trim above, only the
    sliced ones), so an example whose features equal an earlier one's gets the same keys, which TFMA's own code
    computed for the first. The Evaluator's examples have a few dozen distinct (amount bucket, hour bucket) pairs; the
    general lookup per example was a large part of a retrain's Evaluator (docs/benchmarks.md). Examples with keys from
    elsewhere (SQL slicing) or
    features of other kinds take TFMA's path every time."""

    def setup(self):
        super().setup()
        self._memo = {}

    def process(self, element, slice_spec):
        if constants.SLICE_KEY_TYPES_KEY in element:
            return super().process(element, slice_spec)
        key = _memo_key(
            {
                "transformed": element.get(constants.TRANSFORMED_FEATURES_KEY),
                "features": util.get_features_from_extracts(element),
            }
        )
        if key is None:
            return super().process(element, slice_spec)
        found = self._memo.get(key)
        if found is None:
            (computed,) = super().process(element, slice_spec)
            found = {k: computed[k] for k in (constants.SLICE_KEY_TYPES_KEY, constants.SLICE_KEYS_KEY) if k in computed}
            if len(self._memo) < _SLICE_MEMO_SIZE:
                self._memo[key] = found
            return [computed]
        output = copy.copy(element)  # as TFMA's: a shallow copy, the input left as it was
        output.update(found)
        return [output]


def _memoized(slice_keys: extractor.Extractor) -> extractor.Extractor:
    """TFMA's slice key extractor with its DoFn as SliceKeysOfSameValues, given the same slice specs and settings."""
    arguments = tfma_compat.slice_key_arguments(slice_keys)
    if arguments is None:
        return slice_keys
    slice_spec, eval_config, materialize = arguments
    ptransform = "ExtractSliceKeys" >> beam.ParDo(
        SliceKeysOfSameValues(eval_config, materialize), slice_spec=slice_spec
    )
    return extractor.Extractor(stage_name=slice_keys.stage_name, ptransform=ptransform)


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config):
    """TFX's Evaluator hook: TFMA's default extractors with the trim just before the unbatching, and the slice keys
    computed once for each distinct value of the sliced features."""
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model, eval_config=eval_config, tensor_adapter_config=tensor_adapter_config
    )
    extractors = [
        _memoized(e) if e.stage_name == slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME else e for e in extractors
    ]
    stages = [e.stage_name for e in extractors]
    at = stages.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    step = extractor.Extractor(stage_name=TRIM_STAGE_NAME, ptransform=beam.Map(trim, kept_features(eval_config)))
    return [*extractors[:at], step, *extractors[at:]]
