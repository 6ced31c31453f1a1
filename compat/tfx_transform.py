"""TFX's Transform executor and tfx_bsl's TFXIO: the analyzers' examples read by a source the caller gives.

Replaces: `tfx.components.transform.executor.TransformProcessor` (swapped for the executor's run, since TFX's
executor makes its processor by that module attribute) with a subclass whose private `_CreateTFXIO` returns, for
gzipped tf.Examples, a tfx_bsl `TFExampleRecord` whose `BeamSource` is the caller's reader; its private
`_ProjectImpl` keeps projections so. The batch size is tfx_bsl's own (its private `_BATCH_SIZE_CAP*` and
`_UseByteSizeBatching`), so the batches are the ones tfx_bsl's source would make.
Why: TFX's source reads with Beam's Python TFRecord reader a record at a time and decodes with tfx_bsl's decoder,
a large part of Transform's time (docs/benchmarks.md); the caller (components/transform) reads with TensorFlow's
reader and decodes a batch at a time into the same RecordBatches.
Compared with TFX's own path by: tests/test_transform_executor.py (TFX's executor and this one on the same examples:
the same transform graph and the same transformed examples).
"""

import contextlib
from collections.abc import Callable

import apache_beam as beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.transform import executor as tfx_executor
from tfx.proto import example_gen_pb2
from tfx_bsl.coders import batch_util
from tfx_bsl.tfxio import tf_example_record

import compat

DISTRIBUTIONS = ("tfx", "tfx-bsl")
# Reads the files of a pattern as RecordBatches: (file_pattern, full schema, projected schema, batch size) -> a
# PTransform from the pipeline's root.
Source = Callable[[str, schema_pb2.Schema, schema_pb2.Schema, int], beam.PTransform]


def tfx_bsl_batch_size() -> int:
    """tfx_bsl's batch size: its cap with --tfxio_use_byte_size_batching (as the pipeline gives Transform), else
    the cap Beam's adaptive batches end at."""
    if batch_util._UseByteSizeBatching():
        return batch_util._BATCH_SIZE_CAP_WITH_BYTE_TARGET
    return batch_util._BATCH_SIZE_CAP


class _Record(tf_example_record.TFExampleRecord):
    """tfx_bsl's TFExampleRecord whose Beam source is `source`; its projections stay so and keep the whole schema."""

    def __init__(self, file_pattern, schema, telemetry_descriptors, full_schema, source: Source):
        super().__init__(file_pattern=file_pattern, schema=schema, telemetry_descriptors=telemetry_descriptors)
        self._full_schema, self._source = full_schema, source

    def _ProjectImpl(self, tensor_names):  # noqa: N802 - tfx_bsl's name
        projected = super()._ProjectImpl(tensor_names)
        return _Record(
            self._file_pattern, projected._schema, self.telemetry_descriptors, self._full_schema, self._source
        )

    def BeamSource(self, batch_size=None):  # noqa: N802 - tfx_bsl's name
        size = batch_size if batch_size is not None else tfx_bsl_batch_size()
        return self._source(self._file_pattern, self._full_schema, self._schema, size)


def _processor(source: Source) -> type:
    class Processor(tfx_executor.TransformProcessor):
        """TFX's TransformProcessor with gzipped tf.Examples read by `source`."""

        def _CreateTFXIO(self, dataset, schema):  # noqa: N802 - TFX's name
            if (
                dataset.data_format == example_gen_pb2.FORMAT_TF_EXAMPLE
                and dataset.data_view_uri is None
                and dataset.file_format == "tfrecords_gzip"
                and not self._ShouldDecodeAsRawExample(dataset.data_format, dataset.data_view_uri, schema)
            ):
                return _Record(dataset.file_pattern, schema, tfx_executor._TELEMETRY_DESCRIPTORS, schema, source)
            return super()._CreateTFXIO(dataset, schema)

    return Processor


@contextlib.contextmanager
def examples_read_by(source: Source):
    """While inside, TFX's Transform executor reads gzipped tf.Examples with `source` (one executor at a time in a
    process: TFX's runners and Kubeflow's containers run one). Where TFX or tfx_bsl is not the version this was
    written against, TFX's own reading stays."""
    if not compat.supported("tfx_transform", *DISTRIBUTIONS):
        yield
        return
    tfx_processor = tfx_executor.TransformProcessor
    tfx_executor.TransformProcessor = _processor(source)
    try:
        yield
    finally:
        tfx_executor.TransformProcessor = tfx_processor
