"""Serving skew without a model: TFDV statistics streamed batch by batch equal TFDV's statistics of all rows at
once, a larger batch is described by an even sample with every row's min and max, a shifted batch is flagged with
the drift gate's thresholds, and one from the same distribution is not."""

import numpy as np
import pytest

import contract
from components.lib.csv_contract import FEATURES
from datasets import spec as dataset_spec
from pipeline.cli.build import SCHEMA_PATH
from pipeline.scoring import skew


def _rows(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, len(FEATURES)))
    values[:, FEATURES.index(contract.TIME)] = rng.uniform(0, 170_000, n)
    values[:, FEATURES.index(contract.AMOUNT)] = rng.exponential(80, n)
    for name in ("V1", "V2", "V3", "V4"):
        values[:, FEATURES.index(name)] += shift
    labels = [str(int(v)) for v in rng.random(n) < 0.02]
    return values, labels


def _statistics(values, labels, batch=1000):
    stats = skew.BatchStatistics(str(SCHEMA_PATH))
    for start in range(0, len(values), batch):
        stats.add(values[start : start + batch], labels[start : start + batch] if labels else None)
    return stats


def test_statistics_up_to_the_sample_size_count_every_row_and_match_the_whole_batch():
    values, labels = _rows(5000, 0)
    streamed = _statistics(values, labels, batch=700).result().datasets[0]
    whole = _statistics(values, labels, batch=5000).result().datasets[0]
    assert streamed.num_examples == whole.num_examples == 5000
    by_name = {f.path.step[0]: f for f in streamed.features}
    for feature in whole.features:
        name = feature.path.step[0]
        if feature.HasField("num_stats"):
            assert by_name[name].num_stats.mean == pytest.approx(feature.num_stats.mean)
            assert by_name[name].num_stats.max == feature.num_stats.max
    frauds = sum(v.frequency for f in streamed.features if f.path.step[0] == contract.LABEL
                 for v in f.string_stats.top_values if v.value == "1")  # fmt: skip
    assert frauds == labels.count("1")


def test_a_larger_batch_is_described_by_an_even_sample_with_every_rows_extremes(monkeypatch):
    monkeypatch.setattr(skew, "SAMPLE_ROWS", 2000)
    values, labels = _rows(20000, 0)
    time_index = FEATURES.index(contract.TIME)
    values = values[np.argsort(values[:, time_index])]  # time-ordered, as a day's feed is
    stats = _statistics(values, labels, batch=700)
    (dataset,) = stats.result().datasets
    assert (stats.rows, dataset.num_examples) == (20000, 2000)
    by_name = {f.path.step[0]: f for f in dataset.features}
    # Drawn from the whole batch, not its first rows: the sample's mean Time is the batch's (the first 2,000 rows'
    # is a tenth of it).
    assert by_name[contract.TIME].num_stats.mean == pytest.approx(values[:, time_index].mean(), rel=0.05)
    for j, name in enumerate(FEATURES):
        assert (by_name[name].num_stats.min, by_name[name].num_stats.max) == (values[:, j].min(), values[:, j].max())
    again = {f.path.step[0]: f for f in _statistics(values, labels, batch=3000).result().datasets[0].features}
    assert again["V1"].num_stats.mean == by_name["V1"].num_stats.mean  # the same rows, however they stream in


def test_rows_without_their_label_count_as_missing_it():
    values, labels = _rows(3000, 0)
    labels[1500:1600] = [""] * 100
    stats = skew.BatchStatistics(str(SCHEMA_PATH))
    stats.add(values[:1000], None)  # a file without the Class column
    stats.add(values[1000:], labels[1000:])
    (label,) = [f for f in stats.result().datasets[0].features if f.path.step[0] == contract.LABEL]
    common = label.string_stats.common_stats if label.HasField("string_stats") else label.num_stats.common_stats
    assert (common.num_non_missing, common.num_missing) == (1900, 1100)


def test_a_shifted_batch_is_flagged_and_a_like_one_is_not():
    train = _statistics(*_rows(20000, 1)).result()
    drift_config = dataset_spec.drift_config(dataset_spec.default())
    like = _statistics(*_rows(8000, 2))
    found = skew.compare(like.result(), train, drift_config, like.schema, like.labelled)
    assert found["exceeded"] == [] and found["schema_anomalies"] == []
    compared = {f["feature"] for f in found["comparison"]["features"]}
    assert {"V1", "V28", "Amount", contract.LABEL} <= compared and contract.TIME not in compared
    shifted = _statistics(*_rows(8000, 3, shift=3.0))
    found = skew.compare(shifted.result(), train, drift_config, shifted.schema, shifted.labelled)
    assert len(found["exceeded"]) == 1
    for name in ("V1", "V2", "V3", "V4"):
        assert f"{name} Jensen-Shannon divergence" in found["exceeded"][0]
    assert "V5 " not in found["exceeded"][0]


def test_without_labels_the_label_is_not_compared_and_not_an_anomaly():
    train = _statistics(*_rows(20000, 4)).result()
    values, _ = _rows(4000, 5)
    unlabelled = _statistics(values, None)
    found = skew.compare(
        unlabelled.result(), train, dataset_spec.drift_config(dataset_spec.default()), unlabelled.schema, False
    )
    assert contract.LABEL not in {f["feature"] for f in found["comparison"]["features"]}
    assert found["exceeded"] == [] and found["schema_anomalies"] == []


def test_a_batch_that_breaks_the_serving_schema_is_named():
    train = _statistics(*_rows(20000, 6)).result()
    values, labels = _rows(4000, 7)
    values[:10, FEATURES.index(contract.AMOUNT)] = -5.0  # the curated schema: Amount >= 0
    bad = _statistics(values, labels)
    found = skew.compare(bad.result(), train, dataset_spec.drift_config(dataset_spec.default()), bad.schema, True)
    assert [a["feature"] for a in found["schema_anomalies"]] == [contract.AMOUNT]
