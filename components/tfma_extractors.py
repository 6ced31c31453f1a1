"""The Evaluator's TFMA extractors: TFMA's defaults, with the extracts trimmed to what slicing reads before unbatching.

TFMA splits every batched extract into one dict per example before slicing and metrics (its UnbatchExtractor), and
by default each carries every raw feature, every model's every Transform output and the serialized example: here some
100 arrays an example on a retrain, for metrics that read the labels and predictions and slices that read two
features. The trim keeps the features the EvalConfig's slicing specs name (raw or transformed, every model's) and
drops the rest, so the per-example work is the part that is used. The labels, predictions and example weights were
taken out of the features by the extractors before it, so nothing a metric reads is dropped.

TFX's Evaluator takes these through its `custom_extractors` hook (components.serving_baseline.Evaluator passes this
module as its module_path by default); Beam workers import it from the installed project, as they do the Transform
module.
"""

from collections.abc import Mapping

import apache_beam as beam
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.extractors import extractor, unbatch_extractor

TRIM_STAGE_NAME = "TrimExtractsToSlicedFeatures"


def sliced_features(eval_config) -> frozenset:
    """Every feature a slicing spec or cross-slicing spec of the EvalConfig names."""
    specs = list(eval_config.slicing_specs)
    for cross in eval_config.cross_slicing_specs:
        specs += [cross.baseline_spec, *cross.slicing_specs]
    return frozenset(name for spec in specs for name in (*spec.feature_keys, *spec.feature_values))


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


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config):
    """TFX's Evaluator hook: TFMA's default extractors with the trim just before the unbatching."""
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model, eval_config=eval_config, tensor_adapter_config=tensor_adapter_config
    )
    stages = [e.stage_name for e in extractors]
    at = stages.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    step = extractor.Extractor(stage_name=TRIM_STAGE_NAME, ptransform=beam.Map(trim, sliced_features(eval_config)))
    return [*extractors[:at], step, *extractors[at:]]
