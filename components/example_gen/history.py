"""The dataset spec's history windows, point in time, in Beam: each row gets the features of datasets.history.

The rows come and go in blocks (a list of serialized tf.Examples, as the readers make them), and every shuffle moves
blocks of rows rather than rows, so that the runner's cost per element is paid a few thousand times rather than a
few million. For each entry of the spec's history section, what its windows read of each row (the entity, time,
value and label, and where the row is: its block and place) goes to one of NUM_BUCKETS buckets by a hash of the
entity (GroupByKey); a bucket's rows are grouped by entity, sorted by time, and datasets.history.windows computes
every row's windows from prefix sums. The windows go back to their blocks (CoGroupByKey by block), each row's
entries added to its serialized example's features in place (one message, as a writer of the whole example would
write it, so that the examples' readers take their fast path, components/lib/examples_io.py). A row without the entity
or a time gets datasets.history.missing. The blocks of older spans come in as context (keep False): their rows are
in the windows of later rows, and are not in the output.

The same on every runner: a bucket's rows are in one worker's memory, about 1/NUM_BUCKETS of the rows that have the
entity (more when one entity has many rows).
"""

import collections
import hashlib
import zlib

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components.lib.wire import field, read_varint, varint
from datasets import history as history_lib
from datasets.spec import FLOAT, DatasetSpec, History

NUM_BUCKETS = 64


def _first(feature) -> float | int | bytes | None:
    values = feature.float_list.value or feature.int64_list.value or feature.bytes_list.value
    return values[0] if values else None


def _bucket(entity) -> int:
    """The bucket of an entity value: the same on every worker (Python's hash of bytes is not)."""
    return zlib.crc32(entity if isinstance(entity, bytes) else str(entity).encode()) % NUM_BUCKETS


class _Tails:
    """The entries of the history features in tf.Examples' features, one float each, for many rows at once: a fixed
    layout (each feature's map entry is the same bytes but for its 4-byte float), filled from a float32 matrix."""

    def __init__(self, names: list[str]):
        placeholder = b"\0\0\0\0"
        entries = [field(1, field(1, name.encode()) + field(2, field(2, field(1, placeholder)))) for name in names]
        # Each entry: its bytes before the float, then the float (the entry ends with it).
        self._parts = [entry[:-4] for entry in entries]
        fields = []
        for i, part in enumerate(self._parts):
            fields += [(f"p{i}", f"S{len(part)}"), (f"v{i}", "<f4")]
        self._dtype = np.dtype(fields)

    def rows(self, values: np.ndarray) -> list[bytes]:
        """The entries of a row of values (n x features, float64: rounded to float32 as a float_list is), a row."""
        table = np.zeros(len(values), dtype=self._dtype)
        for i, part in enumerate(self._parts):
            table[f"p{i}"] = part
            table[f"v{i}"] = values[:, i].astype(np.float32)
        raw, size = table.tobytes(), self._dtype.itemsize
        return [raw[i * size : (i + 1) * size] for i in range(len(values))]


def with_entries(record: bytes, entries: bytes) -> bytes:
    """A serialized tf.Example with more entries in its features: its one `features` field (Example's field 1)
    lengthened by the entries. A record of another layout (not one `features` field) gets a second Example of the
    entries appended, which parses as the two merged."""
    if not record:
        return field(1, entries)
    if record[0] == 0x0A:  # field 1, length-delimited
        try:
            length, at = read_varint(record, 1)
        except ValueError:
            length, at = -1, 0
        if at + length == len(record):
            return b"\x0a" + varint(length + len(entries)) + record[at:] + entries
    return record + field(1, entries)


class _Split(beam.DoFn):
    """A block -> on the main output (its id, (records, times)) when kept; for each history entry, its rows with the
    entity by bucket (bucket, (block id, keep, places, entities, times, values, labels)); the missing windows of
    the kept rows without the entity, (block id, (entry, places, values))."""

    def __init__(self, spec: DatasetSpec):
        self._spec = spec

    def process(self, element: tuple[list[bytes], bool]):
        records, keep = element
        spec = self._spec
        block = hashlib.blake2b(b"".join(records) + bytes([keep]), digest_size=16).digest()
        examples = [tf.train.Example.FromString(r).features.feature for r in records]
        times_raw = [_first(f[spec.time]) for f in examples]
        if keep:
            yield block, (records, times_raw)
        time_is_float = spec.example_kind(spec.time) == FLOAT
        times = [history_lib.stored(t, time_is_float) for t in times_raw]
        labels = [int((_first(f[spec.label]) or 0) == 1) for f in examples]
        for index, item in enumerate(spec.history):
            value_is_float = bool(item.value) and spec.example_kind(item.value) == FLOAT
            buckets = collections.defaultdict(list)
            missing = []
            for place, feature in enumerate(examples):
                entity = _first(feature[item.entity]) if times_raw[place] is not None else None
                if entity is None:
                    missing.append(place)
                else:
                    buckets[_bucket(entity)].append((place, entity))
            if keep and missing:
                empty = history_lib.missing(item)
                row = np.array([[empty[name] for name, _, _ in item.features]])
                yield beam.pvalue.TaggedOutput("features", (block, (index, missing, np.repeat(row, len(missing), 0))))
            for bucket, rows in buckets.items():
                places = [p for p, _ in rows]
                values = (
                    [history_lib.stored(_first(examples[p][item.value]), value_is_float) for p in places]
                    if item.value
                    else [0.0] * len(places)
                )
                part = (
                    block,
                    keep,
                    places,
                    [e for _, e in rows],
                    [times[p] for p in places],
                    values,
                    [labels[p] for p in places],
                )
                yield beam.pvalue.TaggedOutput(str(index), (bucket, part))


def _windows(group, index: int, item: History):
    """A bucket's rows -> for each block with kept rows there, (block id, (entry, places, the windows of those rows)),
    each entity's windows computed over all its rows in time order."""
    _, parts = group
    blocks, keeps, places, entities, times, values, labels = [], [], [], [], [], [], []
    for block, keep, part_places, part_entities, part_times, part_values, part_labels in parts:
        blocks += [block] * len(part_places)
        keeps += [keep] * len(part_places)
        places += part_places
        entities += part_entities
        times += part_times
        values += part_values
        labels += part_labels
    times_a, values_a, labels_a = np.array(times), np.array(values), np.array(labels)
    names = [name for name, _, _ in item.features]
    matrix = np.zeros((len(times), len(names)))
    by_entity = collections.defaultdict(list)
    for position, entity in enumerate(entities):
        by_entity[entity].append(position)
    for positions in by_entity.values():
        positions = np.array(positions)
        order = positions[np.argsort(times_a[positions], kind="stable")]
        found = history_lib.windows(item, times_a[order], values_a[order], labels_a[order])
        matrix[order] = np.column_stack([found[name] for name in names])
    out = collections.defaultdict(lambda: ([], []))
    for position, (block, keep, place) in enumerate(zip(blocks, keeps, places)):
        if keep:
            out[block][0].append(place)
            out[block][1].append(position)
    for block, (block_places, positions) in out.items():
        yield block, (index, block_places, matrix[positions])


class _Join(beam.DoFn):
    """A block and its rows' windows -> (times, records) with each row's history features added to it."""

    def __init__(self, spec: DatasetSpec):
        self._spec = spec
        self._tails = None

    def process(self, group):
        if self._tails is None:
            self._tails = _Tails(list(self._spec.history_features))
        _, joined = group
        if not joined["block"]:
            return
        widths = [len(item.features) for item in self._spec.history]
        starts = np.cumsum([0, *widths])
        records, times = joined["block"][0]
        values = np.zeros((len(records), starts[-1]))
        # Identical blocks (a file read twice) share an id: their rows' windows arrive once each per copy, the same.
        for index, places, matrix in joined["features"]:
            values[places, starts[index] : starts[index + 1]] = matrix
        tails = self._tails.rows(values)
        for records, times in joined["block"]:
            yield list(times), [with_entries(record, tail) for record, tail in zip(records, tails)]


class AddHistory(beam.PTransform):
    """Blocks of (serialized tf.Examples, keep) -> blocks of (times, serialized tf.Examples) of the kept blocks, with
    the spec's history features (the module docstring)."""

    def __init__(self, spec: DatasetSpec):
        super().__init__()
        self._spec = spec

    def expand(self, blocks):
        entries = [str(i) for i in range(len(self._spec.history))]
        split = blocks | "Split" >> beam.ParDo(_Split(self._spec)).with_outputs("features", *entries, main="blocks")
        features = [split.features]
        for index, item in enumerate(self._spec.history):
            features.append(
                split[str(index)]
                | f"ByBucket[{index}]" >> beam.GroupByKey()
                | f"Windows[{index}]" >> beam.FlatMap(_windows, index, item)
            )
        return (
            {"block": split.blocks, "features": features | "AllFeatures" >> beam.Flatten()}
            | "ByBlock" >> beam.CoGroupByKey()
            | "Join" >> beam.ParDo(_Join(self._spec))
        )
