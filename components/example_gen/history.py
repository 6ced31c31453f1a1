"""The dataset spec's history windows, point in time, in Beam: each row gets the features of datasets.history.

For each entry of the spec's history section, what the windows read of each row (an id, its time, value and label)
is grouped by the entry's entity (GroupByKey), each group sorted by time, and datasets.history.windows computes
every row's windows from prefix sums; a row without the entity or a time gets datasets.history.missing. The
features join their rows by id (CoGroupByKey). The rows of older spans come in as context (keep False): they are in
the windows of later rows, and are not in the output. The same on every runner: a group's rows are in
one worker's memory, so a key's history (the longest window plus the delay of one card or terminal) is what has to
fit, not the data.
"""

import hashlib

import apache_beam as beam
import numpy as np
import tensorflow as tf

from datasets import history as history_lib
from datasets.spec import FLOAT, DatasetSpec, History


def _first(feature) -> float | int | bytes | None:
    values = feature.float_list.value or feature.int64_list.value or feature.bytes_list.value
    return values[0] if values else None


def entity_key(item: History, spec: DatasetSpec, example: tf.train.Example):
    """The row's entity value (bytes or int), None when the row has no entity or no time."""
    feature = example.features.feature
    if _first(feature[spec.time]) is None:
        return None
    return _first(feature[item.entity])


class _Split(beam.DoFn):
    """A row -> (its id, (serialized, keep)) on the main output, and for each history entry its (entity, (id, time,
    value, label, keep)) on that entry's output; a row without the entity gets the missing values at once. The id is
    a digest of the row's bytes: two identical rows have the same windows (a row at the same second is in neither's
    window), so one id for both is the same join."""

    def __init__(self, spec: DatasetSpec):
        self._spec = spec

    def process(self, element: tuple[bytes, bool]):
        serialized, keep = element
        spec = self._spec
        example = tf.train.Example.FromString(serialized)
        feature = example.features.feature
        row = hashlib.blake2b(serialized, digest_size=16).digest()
        yield row, (serialized, keep)
        time_is_float = spec.example_kind(spec.time) == FLOAT
        time = history_lib.stored(_first(feature[spec.time]), time_is_float)
        label = int((_first(feature[spec.label]) or 0) == 1)
        for index, item in enumerate(spec.history):
            entity = entity_key(item, spec, example)
            if entity is None:
                if keep:
                    yield beam.pvalue.TaggedOutput("features", (row, history_lib.missing(item)))
                continue
            value_is_float = bool(item.value) and spec.example_kind(item.value) == FLOAT
            value = history_lib.stored(_first(feature[item.value]), value_is_float) if item.value else 0.0
            yield beam.pvalue.TaggedOutput(str(index), (entity, (row, time, value, label, keep)))


def _windows(group, item: History):
    """One entity's rows -> (id, its features) of each kept row, computed over all of them in time order."""
    _, rows = group
    rows = sorted(rows, key=lambda r: r[1])
    times = np.array([r[1] for r in rows])
    values = np.array([r[2] for r in rows])
    labels = np.array([r[3] for r in rows])
    features = history_lib.windows(item, times, values, labels)
    names = list(features)
    for i, (row, _, _, _, keep) in enumerate(rows):
        if keep:
            yield row, {name: float(features[name][i]) for name in names}


def _joined(group):
    """A row's serialized example with its history features appended (a serialized message followed by another of
    the same type parses as the two merged), once for each copy of the row."""
    _, joined = group
    values: dict[str, float] = {}
    for part in joined["features"]:
        values.update(part)
    extra = tf.train.Example()
    for name, value in values.items():
        extra.features.feature[name].float_list.value.append(value)
    tail = extra.SerializeToString(deterministic=True)
    for serialized, keep in joined["row"]:
        if keep:
            yield serialized + tail


class AddHistory(beam.PTransform):
    """(serialized tf.Example, keep) pairs -> the serialized tf.Examples of the kept rows, with the spec's history
    features. Only what the windows read goes through each entry's grouping by entity (the row's id, time, value and
    label); the examples themselves are shuffled once, to join their features by id."""

    def __init__(self, spec: DatasetSpec):
        super().__init__()
        self._spec = spec

    def expand(self, rows):
        entries = [str(i) for i in range(len(self._spec.history))]
        split = rows | "Split" >> beam.ParDo(_Split(self._spec)).with_outputs("features", *entries, main="rows")
        features = [split.features]
        for index, item in enumerate(self._spec.history):
            features.append(
                split[str(index)]
                | f"ByEntity[{index}]" >> beam.GroupByKey()
                | f"Windows[{index}]" >> beam.FlatMap(_windows, item)
            )
        return (
            {"row": split.rows, "features": features | "AllFeatures" >> beam.Flatten()}
            | "ById" >> beam.CoGroupByKey()
            | "Join" >> beam.FlatMap(_joined)
        )
