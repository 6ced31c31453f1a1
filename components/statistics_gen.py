"""StatisticsGen: TFX's component and executor, with the statistics of a run on the in-process Beam runner computed
in this process, without a Beam pipeline, whenever they come out as TFX's would.

TFX's executor reads each split through a Beam pipeline: Beam's Python TFRecord reader a record at a time, tfx_bsl's
decoder (about 30 us an example), TFDV's generators on batches of up to 1,000 rows, and the pipeline's own
construction and bundles: 35 of the first run's 160 s on the full past file. Here each split is read by TensorFlow's
TFRecord reader and `tf.io.parse_example` in batches of 65,536 examples, and TFDV's generators run on the batches
in this process (`stats_impl.get_generators(in_memory=True)`, what `tfdv.generate_statistics_in_memory` runs).

The result is accepted only when it is TFX's: the same counts, histograms, quantiles and top values, and means and
standard deviations that differ from TFX's only in the last bits of a float sum's order (as two of TFX's own runs
differ, its batches being sized by Beam's timing). So TFX's executor runs instead, unchanged, when
- the run is not on the in-process runner (a `--runner`, or more than one direct worker: the user asked for Beam),
  or it asks for anything but default statistics (stats options, sample rates, sharded output, a custom split
  pattern), or its examples are not gzipped tf.Examples;
- the schema has a feature that is not a FLOAT or an INT, or a sparse or struct feature;
- a record is not exactly the schema's features: `tf.io.parse_example` reads the schema's features only, so every
  record's length is checked against the length of the canonical encoding of what was parsed (a feature more, a
  feature absent rather than empty, a value of another type, all change it or fail the parse);
- a categorical feature has more than 1,024 distinct values: in memory TFDV counts top values with a Misra-Gries
  sketch of 1,024 counters, exact below that and not above, where TFX's Beam generator counts exactly.
Records that pass the check but were written non-canonically (repeated floats not packed, which no tf.Example writer
does) with a feature more of exactly the bytes saved would be read as the schema's features: the one case the
length check cannot see.
"""

import logging
import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import tensorflow as tf
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from tensorflow_data_validation.statistics import stats_impl, stats_options
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.components.statistics_gen import component as statistics_gen_component
from tfx.components.statistics_gen import executor as tfx_executor
from tfx.components.util import examples_utils, tfxio_utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils, json_utils, stats_utils

# Examples a batch: large enough that TFDV's per-batch Python is small, small enough to stay a few MB.
_BATCH = 1 << 14
# Top values are exact in memory up to this many distinct values (TFDV's Misra-Gries sketch size in memory).
_EXACT_DISTINCT = stats_impl._DEFAULT_MG_SKETCH_SIZE  # noqa: SLF001 - the sketch TFDV sizes in memory
_KINDS = {schema_pb2.FLOAT: (tf.float32, pa.float32()), schema_pb2.INT: (tf.int64, pa.int64())}


class Declined(Exception):  # noqa: N818 - a decision, not a fault
    """The statistics cannot be computed here as TFX would compute them; TFX's executor runs instead."""


_VARINT_STEPS = np.array([1 << bits for bits in range(7, 64, 7)], np.uint64)


def _varint_size(values: np.ndarray) -> np.ndarray:
    """Bytes of each value as a protobuf varint (values as uint64: a negative int64 takes 10)."""
    return 1 + np.searchsorted(_VARINT_STEPS, values.astype(np.uint64), side="right")


def _field_size(payload: np.ndarray) -> np.ndarray:
    """Bytes of a length-delimited field (its one-byte tag, the length, the payload) of these payload sizes."""
    return 1 + _varint_size(payload) + payload


class _Decoder:
    """Serialized tf.Examples -> an Arrow RecordBatch as tfx_bsl's decoder makes it without a schema (a
    large_list column a feature, sorted by name), by `tf.io.parse_example` on the schema's features."""

    def __init__(self, schema: schema_pb2.Schema):
        if schema.sparse_feature or any(f.type not in _KINDS for f in schema.feature):
            raise Declined("the schema has a feature that is not a FLOAT or an INT")
        self._features = sorted((f.name, f.type) for f in schema.feature)
        self._spec = {name: tf.io.VarLenFeature(_KINDS[kind][0]) for name, kind in self._features}

    def decode(self, records: tf.Tensor) -> pa.RecordBatch:
        rows = int(records.shape[0])
        try:
            parsed = tf.io.parse_example(records, self._spec)
        except tf.errors.InvalidArgumentError as e:
            raise Declined(f"a record that is not the schema's features ({e.message.splitlines()[0]})") from e
        columns, entries = [], np.zeros(rows, np.int64)
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
            offsets = np.zeros(rows + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
            columns.append(pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, _KINDS[kind][1])))
        expected = np.where(entries > 0, _field_size(entries), 0)
        if not np.array_equal(expected, tf.strings.length(records).numpy()):
            raise Declined("a record that is not exactly the schema's features")
        return pa.RecordBatch.from_arrays(columns, [name for name, _ in self._features])


def _record_batches(files: list[str], decoder: _Decoder) -> Iterator[pa.RecordBatch]:
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", buffer_size=1 << 22).batch(_BATCH)
    for records in dataset:
        yield decoder.decode(records)


def split_statistics(files: list[str], schema: schema_pb2.Schema) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV's statistics of the gzipped tf.Examples in `files`, in this process (raises Declined, see above)."""
    decoder = _Decoder(schema)
    generators = stats_impl.get_generators(stats_options.StatsOptions(schema=schema), in_memory=True)
    accumulators = [g.create_accumulator() for g in generators]
    for batch in _record_batches(files, decoder):
        accumulators = [g.add_input(a, batch) for g, a in zip(generators, accumulators)]
    result = stats_impl.extract_statistics_output(accumulators, generators)
    dataset = result.datasets[0]
    if dataset.num_examples == 0:
        raise Declined("an empty split")  # TFX writes a placeholder of its own for one
    for feature in dataset.features:
        if feature.HasField("string_stats") and feature.string_stats.unique > _EXACT_DISTINCT:
            raise Declined(f"{feature.path.step[0]} has more than {_EXACT_DISTINCT} distinct values")
    return result


def _in_process_runner(beam_pipeline_args: list[str]) -> bool:
    """Whether the run is on Beam's direct runner with one worker, in this process (TFX's default)."""
    options = PipelineOptions(list(beam_pipeline_args or []))
    runner = options.view_as(StandardOptions).runner
    direct = options.view_as(DirectOptions)
    return (
        (runner is None or str(runner).lower() in ("directrunner", "direct"))
        and direct.direct_num_workers == 1
        and direct.direct_running_mode == "in_memory"
    )


def _split_files(examples, split: str) -> list[str]:
    patterns, formats = tfxio_utils.get_file_format_and_patterns([examples], split)
    if any(f != "tfrecords_gzip" for f in formats):
        raise Declined("examples that are not gzipped TFRecords")
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files or any(not path.endswith(".gz") for path in files):
        raise Declined("a split without files, or files Beam would not read as gzip")
    return files


class Executor(tfx_executor.Executor):
    """TFX's StatisticsGen executor; in process when that gives TFX's statistics (module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        try:
            statistics = self._in_process(input_dict, exec_properties)
        except Declined as e:
            logging.info("StatisticsGen: TFX's Beam executor runs: %s", e)
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._write(input_dict, output_dict, statistics)

    def _in_process(self, input_dict, exec_properties) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
        if not _in_process_runner(self._beam_pipeline_args):
            raise Declined("the Beam args name another runner or more workers")
        for key in (standard_component_specs.STATS_OPTIONS_JSON_KEY, standard_component_specs.SAMPLE_RATE_BY_SPLIT_KEY):
            if json_utils.loads(exec_properties.get(key) or "null"):
                raise Declined(f"{key} is set")
        if exec_properties.get(standard_component_specs.SHARDED_STATS_OUTPUT_KEY):
            raise Declined("sharded output")
        if not input_dict.get(standard_component_specs.SCHEMA_KEY):
            raise Declined("no schema")
        examples = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
        if examples.has_custom_property(examples_utils.CUSTOM_SPLIT_PATTERN_PROPERTY_NAME):
            raise Declined("a custom split pattern")
        payload_format, data_view = tfxio_utils.resolve_payload_format_and_data_view_uri([examples])
        if payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE or data_view:
            raise Declined("examples that are not tf.Examples")
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY]))
        )
        return {
            split: split_statistics(_split_files(examples, split), schema)
            for split in _splits(examples, exec_properties)
        }

    def _write(self, input_dict, output_dict, statistics) -> None:
        """The artifact's properties as TFX's executor sets them, and a FeatureStats.pb a split."""
        examples = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
        artifact = artifact_utils.get_single_instance(output_dict[standard_component_specs.STATISTICS_KEY])
        artifact.split_names = artifact_utils.encode_split_names(list(statistics))
        artifact.span = examples.span
        artifact.set_string_custom_property(
            tfx_executor.STATS_DASHBOARD_LINK, stats_utils.generate_stats_dashboard_link(artifact)
        )
        artifact.set_json_value_custom_property(
            tfx_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME, json_utils.dumps({split: 1.0 for split in statistics})
        )
        for split, result in statistics.items():
            uri = artifact_utils.get_split_uri([artifact], split)
            tf.io.gfile.makedirs(uri)
            io_utils.write_bytes_file(os.path.join(uri, tfx_executor.DEFAULT_FILE_NAME), result.SerializeToString())
            logging.info("StatisticsGen: statistics for split %s written to %s, in process", split, uri)


def _splits(examples, exec_properties) -> list[str]:
    exclude = json_utils.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY) or "null") or []
    return [s for s in artifact_utils.decode_split_names(examples.split_names) if s not in exclude]


class StatisticsGenSpec(standard_component_specs.StatisticsGenSpec):
    """TFX's StatisticsGen spec and `code_version`, the fingerprint of this module's code, so that a change to it
    changes the component's cache key and re-runs it."""

    PARAMETERS = {
        **standard_component_specs.StatisticsGenSpec.PARAMETERS,
        "code_version": ExecutionParameter(type=str, optional=True),
    }


class StatisticsGen(statistics_gen_component.StatisticsGen):
    """TFX's StatisticsGen (same id, inputs and outputs) with the executor above."""

    SPEC_CLASS = StatisticsGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, examples, schema=None, code_version: str = ""):
        spec = StatisticsGenSpec(
            examples=examples,
            schema=schema,
            exclude_splits=json_utils.dumps([]),
            statistics=channel.Channel(type=standard_artifacts.ExampleStatistics),
            code_version=code_version,
        )
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
