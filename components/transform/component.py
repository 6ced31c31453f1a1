"""Transform: TFX's component and executor, with the examples of a run on the in-process Beam runner read by
components.lib.examples_io instead of Beam's TFRecord source and tfx_bsl's decoder.

TFX's executor reads the train split for the analyzers through tfx_bsl's TFXIO: Beam's Python TFRecord reader a
record at a time and tfx_bsl's decoder. Here the same TFXIO's Beam source (compat/tfx_transform.py hooks it in)
reads the files with TensorFlow's reader and decodes each batch with `tf.io.parse_example`, into the RecordBatches
tfx_bsl's decoder makes of the schema's features, in the same order and the same batches (tfx_bsl's batch size; one
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
from tfx_bsl.coders import example_coder

from compat import tfx_transform
from components.lib import examples_io


class DecodeFiles(beam.DoFn):
    """All the files, in order, as tfx_bsl's decoder would decode them with `schema` (the projected schema)."""

    def __init__(self, full_schema: bytes, schema: bytes, batch_size: int):
        self._full_schema, self._schema, self._batch_size = full_schema, schema, batch_size

    def setup(self):
        self._exact = example_coder.ExamplesToRecordBatchDecoder(self._schema)
        columns = self._exact.ArrowSchema()
        try:
            self.fast = examples_io.ExampleDecoder(
                schema_pb2.Schema.FromString(self._full_schema), columns=columns.names
            )
        except examples_io.NotCanonical:
            self.fast = None
        self._columns = columns

    def process(self, files: list[str]):
        for records in examples_io.record_batches(files, self._batch_size):
            batch = None
            if self.fast is not None:
                try:
                    batch = self.fast.decode(records)
                except examples_io.NotCanonical:
                    batch = None
            if batch is None or not batch.schema.equals(self._columns):
                batch = self._exact.DecodeBatch(records.numpy().tolist())
            yield batch


def read_in_process(
    file_pattern: str, full_schema: schema_pb2.Schema, schema: schema_pb2.Schema, batch_size: int
) -> beam.PTransform:
    """The files of `file_pattern` as the RecordBatches of `schema`, read and decoded in this process."""
    files = examples_io.files(file_pattern)
    decode = DecodeFiles(full_schema.SerializeToString(), schema.SerializeToString(), batch_size)

    @beam.ptransform_fn
    def read(pipeline):
        return pipeline | "Files" >> beam.Create([files]) | "ReadAndDecode" >> beam.ParDo(decode)

    return read()  # pylint: disable=no-value-for-parameter


class Executor(tfx_executor.Executor):
    """TFX's Transform executor; its examples read in process on the in-process runner (module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        if not examples_io.in_process_runner(self._beam_pipeline_args):
            super().Do(input_dict, output_dict, exec_properties)
            return
        with tfx_transform.examples_read_by(read_in_process):
            super().Do(input_dict, output_dict, exec_properties)


class Transform(transform_component.Transform):
    """TFX's Transform (same id, inputs, outputs and options) with the executor above."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
