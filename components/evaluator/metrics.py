"""The Evaluator's own TFMA metric: card precision@k (components/lib/card_precision.py), named by the EvalConfig
where the dataset spec names an entity (pipeline/definition/eval_config.py). It reads two raw features of each
example, the card and the event time, which the extractors keep for it (components/evaluator/extractors.py,
features_read). Beam workers import it from the installed project, as they do the extractors.
"""

import json

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from compat import tfma as tfma_compat
from components.lib.card_precision import DailyBest

CLASS_NAME = "CardPrecisionAtK"


class CardPrecisionAtK(metric_types.Metric):
    """Card precision@k of the probability output.

    Args:
      name: the metric's name (card_precision_at_K).
      entity: the card's column (a raw feature of the examples).
      time: the event time's column, in seconds.
      k: the cards a day.
    """

    def __init__(self, name: str = "card_precision_at_100", entity: str = "", time: str = "", k: int = 100):
        super().__init__(_computations, name=name, entity=entity, time=time, k=k)


metric_types.register_metric(CardPrecisionAtK)


def _computations(
    name: str, entity: str, time: str, k: int, eval_config=None, model_names=None, output_names=None,
    example_weighted: bool = False,
):  # fmt: skip
    if not entity or not time:
        raise ValueError(f"{CLASS_NAME} needs the card's column (entity) and the time's (time)")
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(
                name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
            )
            computations.append(
                metric_types.MetricComputation(
                    keys=[key],
                    preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[entity, time])],
                    combiner=CardPrecisionCombiner(key, eval_config, entity, time, k),
                )
            )
    return computations


def _first(value):
    value = np.asarray(value).reshape(-1)
    return value[0] if value.size else None


class CardPrecisionCombiner(beam.CombineFn):
    """Card precision@k's TFMA combiner: each row's card, time, score and label into a DailyBest. The Evaluator's
    in-process evaluation (components/evaluator/in_process.py) fills the same DailyBest from the columns of the
    `entity` and `time` features and the label and prediction of `key`."""

    def __init__(self, key, eval_config, entity: str, time: str, k: int):
        self.key, self._eval_config = key, eval_config
        self.entity, self.time, self._k = entity, time, k

    def create_accumulator(self) -> DailyBest:
        return DailyBest()

    def add_input(self, accumulator: DailyBest, element) -> DailyBest:
        key = self.key
        pair = tfma_compat.simple_label_and_prediction(element, key.model_name, key.output_name)
        if pair is None:
            label, prediction, _ = next(
                metric_util.to_label_prediction_example_weight(
                    element, eval_config=self._eval_config, model_name=key.model_name, output_name=key.output_name
                )
            )
        else:
            label, prediction = pair
        features = element.features or {}
        card, time = _first(features.get(self.entity, [])), _first(features.get(self.time, []))
        if isinstance(card, bytes):
            card = card.decode("utf-8", "replace")
        if time is not None:
            accumulator.add(float(time), card, float(_first(prediction)), int(_first(label)))
        return accumulator

    def merge_accumulators(self, accumulators) -> DailyBest:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for other in accumulators:
            merged.merge(other)
        return merged

    def extract_output(self, accumulator: DailyBest) -> dict:
        value = accumulator.precision(self._k)
        return {self.key: float("nan") if value is None else value}


def features_read(eval_config) -> frozenset:
    """The raw features the EvalConfig's card precision metrics read (their cards and times)."""
    names = set()
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name == CLASS_NAME:
                config = json.loads(metric.config or "{}")
                names |= {config.get("entity", ""), config.get("time", "")} - {""}
    return frozenset(names)
