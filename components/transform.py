"""Transform: TFX's component and executor, with the examples of a run on the in-process Beam runner read by
components.examples_io instead of Beam's TFRecord source and tfx_bsl's decoder.

TFX's executor reads the train split for the analyzers through tfx_bsl's TFXIO: Beam's Python TFRecord reader a
record at a time and tfx_bsl's decoder, about 8 of Transform's 22 s on the full past file. Here the same TFXIO's Beam
source reads the files with TensorFlow's reader and decodes each batch with `tf.io.parse_example`, into the
RecordBatches tfx_bsl's decoder makes of the schema's features, in the same order and the same batches (8,192
records with `--tfxio_use_byte_size_batching`, as the pipeline gives Transform, for records up to 2,560 bytes: one
unsplit gzip file is one ordered read either way). A batch that is not exactly the schema's features
(examples_io.NotCanonical: a feature more, which tfx_bsl ignores, or one absent, which it makes a null) is decoded
by tfx_bsl's decoder, so the analyzers see what they would have seen. Any other runner, or examples that are not
gzipped tf.Examples, get TFX's own source.
"""

import apache_beam as beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.transform import component as transform_component
from tfx.components.transform import executor as tfx_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx_bsl.coders import batch_util, example_coder
from tfx_bsl.tfxio import tf_example_record

from components import examples_io

# tfx_bsl's batch with --tfxio_use_byte_size_batching (its cap), and without it (Beam's adaptive batches end at this).
_BYTE_SIZE_BATCH = batch_util._BATCH_SIZE_CAP_WITH_BYTE_TARGET  # noqa: SLF001 - tfx_bsl's own batch size
_ADAPTIVE_BATCH_CAP = batch_util._BATCH_SIZE_CAP  # noqa: SLF001


class _DecodeFiles(beam.DoFn):
    """All the files, in order, as tfx_bsl's decoder would decode them with `schema` (the projected schema)."""

    def __init__(self, full_schema: bytes, schema: bytes, batch_size: int):
        self._full_schema, self._schema, self._batch_size = full_schema, schema, batch_size

    def setup(self):
        self._exact = example_coder.ExamplesToRecordBatchDecoder(self._schema)
        columns = self._exact.ArrowSchema()
        try:
            self._fast = examples_io.ExampleDecoder(
                schema_pb2.Schema.FromString(self._full_schema), columns=columns.names
            )
        except examples_io.NotCanonical:
            self._fast = None
        self._columns = columns

    def process(self, files: list[str]):
        for records in examples_io.record_batches(files, self._batch_size):
            batch = None
            if self._fast is not None:
                try:
                    batch = self._fast.decode(records)
                except examples_io.NotCanonical:
                    batch = None
            if batch is None or not batch.schema.equals(self._columns):
                batch = self._exact.DecodeBatch(records.numpy().tolist())
            yield batch


class _FastTFExampleRecord(tf_example_record.TFExampleRecord):
    """tfx_bsl's TFExampleRecord whose Beam source reads and decodes the files in this process (module docstring);
    its projections stay so and keep the whole schema, which the length check needs."""

    def __init__(self, file_pattern, schema: schema_pb2.Schema, telemetry_descriptors, full_schema: schema_pb2.Schema):
        super().__init__(file_pattern=file_pattern, schema=schema, telemetry_descriptors=telemetry_descriptors)
        self._full_schema = full_schema

    def _ProjectImpl(self, tensor_names):  # noqa: N802 - tfx_bsl's name
        projected = super()._ProjectImpl(tensor_names)
        return _FastTFExampleRecord(
            self._file_pattern, projected._schema, self.telemetry_descriptors, self._full_schema
        )

    def BeamSource(self, batch_size=None):  # noqa: N802 - tfx_bsl's name
        if batch_size is None:
            batch_size = _BYTE_SIZE_BATCH if batch_util._UseByteSizeBatching() else _ADAPTIVE_BATCH_CAP  # noqa: SLF001
        files = examples_io.files(self._file_pattern)
        decode = _DecodeFiles(self._full_schema.SerializeToString(), self._schema.SerializeToString(), batch_size)

        @beam.ptransform_fn
        def read(pipeline):
            return pipeline | "Files" >> beam.Create([files]) | "ReadAndDecode" >> beam.ParDo(decode)

        return read()  # pylint: disable=no-value-for-parameter


class _Processor(tfx_executor.TransformProcessor):
    """TFX's TransformProcessor (what its executor runs) with the examples read in process."""

    def _CreateTFXIO(self, dataset, schema):  # noqa: N802 - TFX's name
        if (
            dataset.data_format == example_gen_pb2.FORMAT_TF_EXAMPLE
            and dataset.data_view_uri is None
            and dataset.file_format == "tfrecords_gzip"
            and not self._ShouldDecodeAsRawExample(dataset.data_format, dataset.data_view_uri, schema)
        ):
            return _FastTFExampleRecord(
                dataset.file_pattern,
                schema,
                tfx_executor._TELEMETRY_DESCRIPTORS,
                schema,  # noqa: SLF001
            )
        return super()._CreateTFXIO(dataset, schema)


class Executor(tfx_executor.Executor):
    """TFX's Transform executor; its examples read in process on the in-process runner (module docstring). TFX's
    executor makes its TransformProcessor by the module's name, so that name is this module's processor while it
    runs (one executor at a time in a process: TFX's runners and Kubeflow's containers run one)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        if not examples_io.in_process_runner(self._beam_pipeline_args):
            super().Do(input_dict, output_dict, exec_properties)
            return
        tfx_processor = tfx_executor.TransformProcessor
        tfx_executor.TransformProcessor = _Processor
        try:
            super().Do(input_dict, output_dict, exec_properties)
        finally:
            tfx_executor.TransformProcessor = tfx_processor


class Transform(transform_component.Transform):
    """TFX's Transform (same id, inputs, outputs and options) with the executor above."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
