"""Gzipped tf.Example TFRecords into Arrow RecordBatches the fast way, exactly as tfx_bsl's decoder gives them or not
at all: TensorFlow's TFRecord reader and `tf.io.parse_example` (C++, several times faster an example than tfx_bsl's
decoder: docs/benchmarks.md, "The examples' fast reader").

`tf.io.parse_example` reads the schema's features only, so every record's length is checked against the length of
the canonical encoding of what was parsed: a feature more, or a value of another type, changes it or fails the
parse, and the batch is NotCanonical. A feature without values in a row is either absent (tfx_bsl makes that a null)
or present and empty (an empty list); the length tells which when a row's features without values are all absent or
all present, and anything in between is NotCanonical. The one case the check cannot see: a record that repeats
floats unpacked (which no tf.Example writer does: the proto declares them packed) and has a feature more of exactly
the bytes that saved.
"""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import tensorflow as tf
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.util import tfxio_utils

_KINDS = {
    schema_pb2.FLOAT: (tf.float32, pa.float32()),
    schema_pb2.INT: (tf.int64, pa.int64()),
    schema_pb2.BYTES: (tf.string, pa.large_binary()),
}
_VARINT_STEPS = np.array([1 << bits for bits in range(7, 64, 7)], np.uint64)


class NotCanonical(Exception):  # noqa: N818 - a finding about the data, handled by the caller
    """The records, or the schema, are not ones this reader decodes exactly as tfx_bsl would."""


def _varint_size(values: np.ndarray) -> np.ndarray:
    """Bytes of each value as a protobuf varint (values as uint64: a negative int64 takes 10)."""
    return 1 + np.searchsorted(_VARINT_STEPS, values.astype(np.uint64), side="right")


def _field_size(payload: np.ndarray) -> np.ndarray:
    """Bytes of a length-delimited field (its one-byte tag, the length, the payload) of these payload sizes."""
    return 1 + _varint_size(payload) + payload


def _entry_size(key: int, value_list: np.ndarray) -> np.ndarray:
    """Bytes of a feature's entry in Features' map (key and Feature) as a field, for these sizes of its value list."""
    return _field_size(1 + _varint_size(np.array(key)) + key + _field_size(_field_size(value_list)))


def _list_size(kind, values, row_of, counts, rows) -> np.ndarray:
    """The size of each row's value list (FloatList, Int64List or BytesList) as tf.Example writers encode it; values
    as parsed (a string tensor for BYTES, else a NumPy array)."""
    if kind == schema_pb2.BYTES:
        lengths = tf.strings.length(values).numpy()
        return np.bincount(row_of, weights=_field_size(lengths), minlength=rows).astype(np.int64)
    if kind == schema_pb2.FLOAT:
        packed = 4 * counts
    else:
        packed = np.bincount(row_of, weights=_varint_size(values.view(np.uint64)), minlength=rows)
        packed = packed.astype(np.int64)
    return np.where(counts > 0, _field_size(packed), 0)  # an empty packed field is not written


def _record_size(entries: np.ndarray) -> np.ndarray:
    return np.where(entries > 0, _field_size(entries), 0)


class ExampleDecoder:
    """Serialized tf.Examples of the schema's features -> an Arrow RecordBatch of `columns`, as tfx_bsl's decoder
    makes them: a large_list<float32>, large_list<int64> or large_list<large_binary> column a feature, a null where
    a row does not have the feature.

    Without `columns`, as tfx_bsl's decoder without a schema (TFX's StatisticsGen) decodes a batch: the features
    some row of the batch has, sorted by name. With `columns`, as it decodes them with a schema (Transform): those
    columns, in that order, a column of nulls for a feature no row has."""

    def __init__(self, schema: schema_pb2.Schema, columns: list[str] | None = None):
        if schema.sparse_feature or any(f.type not in _KINDS for f in schema.feature):
            raise NotCanonical("the schema has a feature that is not a FLOAT, an INT or BYTES")
        self._features = sorted((f.name, f.type) for f in schema.feature)
        self._spec = {name: tf.io.VarLenFeature(_KINDS[kind][0]) for name, kind in self._features}
        self._columns = list(columns) if columns is not None else None

    def decode(self, records: tf.Tensor) -> pa.RecordBatch:
        """A batch of records (a 1-D string tensor) -> its RecordBatch; raises NotCanonical (see the module)."""
        rows = int(records.shape[0])
        try:
            parsed = tf.io.parse_example(records, self._spec)
        except tf.errors.InvalidArgumentError as e:
            raise NotCanonical(f"a record that is not the schema's features ({e.message.splitlines()[0]})") from e
        # Each row's entries with values, and what its features without values would add if they were present.
        with_values, if_present = np.zeros(rows, np.int64), np.zeros(rows, np.int64)
        decoded = {}
        for name, kind in self._features:
            values = parsed[name].values
            if kind != schema_pb2.BYTES:
                values = values.numpy()  # once: for the sizes and the column (bytes' lengths come from the tensor)
            row_of = parsed[name].indices.numpy()[:, 0]
            counts = np.bincount(row_of, minlength=rows)
            key = len(name.encode())
            with_values += np.where(counts > 0, _entry_size(key, _list_size(kind, values, row_of, counts, rows)), 0)
            if_present += np.where(counts > 0, 0, _entry_size(key, np.zeros(1, np.int64)))
            decoded[name] = (kind, values, counts)
        lengths = tf.strings.length(records).numpy()
        present = lengths == _record_size(with_values + if_present)  # features without values: all present, empty
        absent = lengths == _record_size(with_values)  # ... or all absent
        if not np.all(present | absent):
            raise NotCanonical("a record that is not exactly the schema's features")
        names = self._columns
        if names is None:  # the features some row has
            names = [n for n, (_, _, counts) in decoded.items() if np.any((counts > 0) | (present & ~absent))]
        arrays = []
        for name in names:
            kind, values, counts = decoded[name]
            null = (counts == 0) & ~present
            offsets = np.zeros(rows + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
            offsets = pa.array(offsets, mask=np.append(null, False)) if null.any() else pa.array(offsets)
            values = values.numpy() if kind == schema_pb2.BYTES else values
            arrays.append(pa.LargeListArray.from_arrays(offsets, pa.array(values, _KINDS[kind][1])))
        return pa.RecordBatch.from_arrays(arrays, names)


def files(patterns) -> list[str]:
    """The files of file patterns (a pattern or a list of them), sorted: the order Beam's TFRecord source reads."""
    patterns = [patterns] if isinstance(patterns, str) else patterns
    return sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))


def split_files(examples: list, split: str) -> list[str]:
    """The files of a split of Examples artifacts, as Beam's TFRecord source reads them; NotCanonical where they are
    not gzipped TFRecords, or the split has none (TFX's executors then read it their own way)."""
    patterns, formats = tfxio_utils.get_file_format_and_patterns(examples, split)
    if any(f != "tfrecords_gzip" for f in formats):
        raise NotCanonical("examples that are not gzipped TFRecords")
    found = files(patterns)
    if not found or any(not path.endswith(".gz") for path in found):
        raise NotCanonical("a split without files, or files Beam would not read as gzip")
    return found


def record_batches(files: list[str], batch_size: int) -> Iterator[tf.Tensor]:
    """The records of gzipped TFRecord files, in file order, as 1-D string tensors of batch_size (the last shorter):
    the batches Beam's TFRecord reader and tfx_bsl's batching of a fixed size make of one unsplit file."""
    yield from tf.data.TFRecordDataset(files, compression_type="GZIP", buffer_size=1 << 22).batch(batch_size)


def in_process_runner(beam_pipeline_args) -> bool:
    """Whether Beam args run on Beam's direct runner with one worker, in this process (TFX's default): where reading
    here, not through Beam's sources, takes nothing from the runner."""
    options = PipelineOptions(list(beam_pipeline_args or []))
    runner = options.view_as(StandardOptions).runner
    direct = options.view_as(DirectOptions)
    return (
        (runner is None or str(runner).lower() in ("directrunner", "direct"))
        and direct.direct_num_workers == 1
        and direct.direct_running_mode == "in_memory"
    )
