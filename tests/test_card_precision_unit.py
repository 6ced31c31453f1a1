"""Card precision@k (components/lib/card_precision.py) on hand-made rows, the Evaluator's TFMA metric against it,
and where the spec turns it on."""

import json
import math

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types

from components.evaluator import extractors
from components.evaluator import metrics as evaluator_metrics
from components.lib.card_precision import DailyBest, card_precision_at_k
from datasets import spec as dataset_spec
from pipeline.definition.eval_config import eval_config
from pipeline.definition.gates import GateConfig

DAY = 86400.0
# (time, card, label, score). Day 0: A's best is 0.9 and it had a fraud (its second row), B 0.8 without, C 0.7 with
# one; at k 2, A and B: 1 of 2. Day 1: D 0.6 with a fraud, E 0.6 without (a tie: D before E by its id), F 0.2 with
# one; at k 2, D and E: 1 of 2. A fraud without a card and a row without a time are left out.
ROWS = [
    (10.0, "A", 0, 0.9),
    (20.0, "A", 1, 0.1),
    (30.0, "B", 0, 0.8),
    (40.0, "C", 1, 0.7),
    (DAY + 5, "E", 0, 0.6),
    (DAY + 6, "D", 1, 0.6),
    (DAY + 7, "F", 1, 0.2),
    (DAY + 8, None, 1, 0.99),
    (float("nan"), "H", 1, 0.99),
]


def _columns(rows):
    times, cards, labels, scores = zip(*rows)
    return np.array(times), list(cards), np.array(labels), np.array(scores)


def test_card_precision_ranks_each_days_cards_by_their_best_score():
    assert card_precision_at_k(*_columns(ROWS), k=2) == pytest.approx((1 / 2 + 1 / 2) / 2)
    # At k 1 each day's best card alone: A (a fraud that day) and D (before E by its id): 1 and 1.
    assert card_precision_at_k(*_columns(ROWS), k=1) == 1.0
    # At k 3 day 1 has D, E, F: 2 of 3; day 0 A, B, C: 2 of 3.
    assert card_precision_at_k(*_columns(ROWS), k=3) == pytest.approx(2 / 3)
    # At k 4 a day with three cards counts the missing place as a miss.
    assert card_precision_at_k(*_columns(ROWS), k=4) == pytest.approx(2 / 4)
    assert card_precision_at_k([], [], [], [], k=2) is None
    assert DailyBest().precision(2) is None


def test_merged_accumulators_give_what_one_does():
    whole = DailyBest()
    halves = DailyBest(), DailyBest()
    for i, (time, card, label, score) in enumerate(ROWS):
        whole.add(time, card, score, label)
        halves[i % 2].add(time, card, score, label)
    merged = halves[1].merge(halves[0])
    assert merged.best == whole.best and merged.precision(2) == whole.precision(2)


def _element(time, card, label, score, model=""):
    labels, predictions = np.array([label]), np.array([score], np.float32)
    if model:
        labels, predictions = {model: labels}, {model: predictions}
    features = {"card": np.array([card.encode() if card else b""], object), "time": np.array([time])}
    return metric_types.StandardMetricInputs(
        {constants.LABELS_KEY: labels, constants.PREDICTIONS_KEY: predictions, constants.FEATURES_KEY: features}
    )


def test_the_tfma_metric_gives_the_librarys_value_over_split_accumulators():
    metric = evaluator_metrics.CardPrecisionAtK(name="card_precision_at_2", entity="card", time="time", k=2)
    (computation,) = metric.computations(eval_config=tfma.EvalConfig(), model_names=[""], output_names=[""])
    assert computation.preprocessors[0].include_filter[constants.FEATURES_KEY] == {"card": {}, "time": {}}
    combiner = computation.combiner
    parts = [combiner.create_accumulator(), combiner.create_accumulator()]
    for i, row in enumerate(ROWS):
        parts[i % 2] = combiner.add_input(parts[i % 2], _element(*row))
    (value,) = combiner.extract_output(combiner.merge_accumulators(parts)).values()
    assert value == card_precision_at_k(*_columns(ROWS), k=2)
    empty = combiner.extract_output(combiner.create_accumulator())
    assert all(math.isnan(v) for v in empty.values())


def test_the_simulated_spec_turns_it_on_and_the_extractors_keep_what_it_reads():
    simulated = dataset_spec.load(f"{dataset_spec.DATASETS_DIR}/simulated/dataset.yaml")
    assert simulated.card_precision == dataset_spec.CardPrecision("customer_id", 100)
    config = eval_config(GateConfig(), simulated)
    named = [m for s in config.metrics_specs for m in s.metrics if m.class_name == evaluator_metrics.CLASS_NAME]
    assert [json.loads(m.config) for m in named] == [
        {"name": "card_precision_at_100", "entity": "customer_id", "time": "tx_datetime", "k": 100}
    ]
    assert {"customer_id", "tx_datetime"} <= extractors.kept_features(config)
    # The ULB file names no entity: its EvalConfig is as it was.
    ulb = eval_config(GateConfig(), dataset_spec.default())
    assert dataset_spec.default().card_precision is None
    assert not [m for s in ulb.metrics_specs for m in s.metrics if m.class_name == evaluator_metrics.CLASS_NAME]
    assert evaluator_metrics.features_read(ulb) == frozenset()
