"""Gzipped tf.Example TFRecords into Arrow RecordBatches the fast way, exactly as tfx_bsl's decoder gives them or not
at all: TensorFlow's TFRecord reader and `tf.io.parse_example` (C++, about 4 us an example against tfx_bsl's 30 us).

`tf.io.parse_example` reads the schema's features only, so every record's length is checked against the length of
the canonical encoding of what was parsed: a feature more, a feature absent rather than empty (tfx_bsl makes that a
null, not an empty list), or a value of another type all change it or fail the parse, and the batch is NotCanonical.
The one case the check cannot see: a record that repeats floats unpacked (which no tf.Example writer does: the proto
declares them packed) and has a feature more of exactly the bytes that saved.
"""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import tensorflow as tf
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from tensorflow_metadata.proto.v0 import schema_pb2

_KINDS = {schema_pb2.FLOAT: (tf.float32, pa.float32()), schema_pb2.INT: (tf.int64, pa.int64())}
_VARINT_STEPS = np.array([1 << bits for bits in range(7, 64, 7)], np.uint64)


class NotCanonical(Exception):  # noqa: N818 - a finding about the data, handled by the caller
    """The records, or the schema, are not ones this reader decodes exactly as tfx_bsl would."""


def _varint_size(values: np.ndarray) -> np.ndarray:
    """Bytes of each value as a protobuf varint (values as uint64: a negative int64 takes 10)."""
    return 1 + np.searchsorted(_VARINT_STEPS, values.astype(np.uint64), side="right")


def _field_size(payload: np.ndarray) -> np.ndarray:
    """Bytes of a length-delimited field (its one-byte tag, the length, the payload) of these payload sizes."""
    return 1 + _varint_size(payload) + payload


class ExampleDecoder:
    """Serialized tf.Examples holding exactly the schema's features -> an Arrow RecordBatch of `columns` (default:
    every feature, sorted by name, as tfx_bsl's decoder orders them without a schema): a large_list<float32> or
    large_list<int64> column a feature, as tfx_bsl's decoder makes them."""

    def __init__(self, schema: schema_pb2.Schema, columns: list[str] | None = None):
        if schema.sparse_feature or any(f.type not in _KINDS for f in schema.feature):
            raise NotCanonical("the schema has a feature that is not a FLOAT or an INT")
        self._features = sorted((f.name, f.type) for f in schema.feature)
        self._spec = {name: tf.io.VarLenFeature(_KINDS[kind][0]) for name, kind in self._features}
        self._columns = list(columns) if columns is not None else [name for name, _ in self._features]

    def decode(self, records: tf.Tensor) -> pa.RecordBatch:
        """A batch of records (a 1-D string tensor) -> its RecordBatch; raises NotCanonical (see the module)."""
        rows = int(records.shape[0])
        try:
            parsed = tf.io.parse_example(records, self._spec)
        except tf.errors.InvalidArgumentError as e:
            raise NotCanonical(f"a record that is not the schema's features ({e.message.splitlines()[0]})") from e
        columns, entries = {}, np.zeros(rows, np.int64)
        for name, kind in self._features:
            values = parsed[name].values.numpy()
            row_of = parsed[name].indices.numpy()[:, 0]
            counts = np.bincount(row_of, minlength=rows)
            if kind == schema_pb2.FLOAT:
                packed = 4 * counts
            else:
                packed = np.bincount(row_of, weights=_varint_size(values.view(np.uint64)), minlength=rows)
                packed = packed.astype(np.int64)
            value_list = np.where(counts > 0, _field_size(packed), 0)  # an empty packed field is not written
            key = len(name.encode())
            entries += _field_size(1 + _varint_size(np.array(key)) + key + _field_size(_field_size(value_list)))
            if name in self._columns:
                offsets = np.zeros(rows + 1, np.int64)
                np.cumsum(counts, out=offsets[1:])
                columns[name] = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, _KINDS[kind][1]))
        expected = np.where(entries > 0, _field_size(entries), 0)
        if not np.array_equal(expected, tf.strings.length(records).numpy()):
            raise NotCanonical("a record that is not exactly the schema's features")
        return pa.RecordBatch.from_arrays([columns[name] for name in self._columns], self._columns)


def files(patterns) -> list[str]:
    """The files of file patterns (a pattern or a list of them), sorted: the order Beam's TFRecord source reads."""
    patterns = [patterns] if isinstance(patterns, str) else patterns
    return sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))


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
