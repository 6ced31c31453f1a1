"""StatisticsGen: TFX's component and executor, with the statistics of a run on the in-process Beam runner computed
in this process, without a Beam pipeline, whenever they come out as TFX's would.

TFX's executor reads each split through a Beam pipeline: Beam's Python TFRecord reader a record at a time, tfx_bsl's
decoder, TFDV's generators on batches of up to 1,000 rows, and the pipeline's own construction and bundles: a large
share of a first run on the full file (docs/benchmarks.md). Here each split is read and decoded by
components.lib.examples_io (TensorFlow's reader and parser, batches of 16,384 examples), and TFDV's generators run on
the batches in this process (`stats_impl.get_generators(in_memory=True)`, what `tfdv.generate_statistics_in_memory`
runs).

The result is accepted only when it is TFX's: the same counts, histograms, quantiles and top values, and means and
standard deviations that differ from TFX's only in the last bits of a float sum's order (as two of TFX's own runs
differ, its batches being sized by Beam's timing). So TFX's executor runs instead, unchanged, when
- the run is not on the in-process runner (a `--runner`, or more than one direct worker: the user asked for Beam),
  or it asks for anything but default statistics (stats options, sample rates, sharded output, a custom split
  pattern), or its examples are not gzipped tf.Examples, or there is no schema;
- a record is not exactly the schema's features, or the schema has a feature that is not a FLOAT, an INT or BYTES
  (examples_io.NotCanonical: tfx_bsl's decoder without a schema, as TFX's executor reads, would type the data
  itself);
- a split is empty (TFX writes a placeholder of its own).

Top values and distinct counts are counted exactly, as TFX's Beam generator counts them (compat/tfdv.py), however
many distinct values a feature has; on a TFDV of another version they are not, and a split with a categorical
feature goes to TFX's executor.
"""

import logging
import os

import tensorflow as tf
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

from compat import tfdv as tfdv_compat
from components.lib import examples_io

# Examples a batch: large enough that TFDV's per-batch Python is small, small enough to stay a few MB.
_BATCH = 1 << 14


class Declined(Exception):  # noqa: N818 - a decision, not a fault
    """The statistics cannot be computed here as TFX would compute them; TFX's executor runs instead."""


def split_statistics(files: list[str], schema: schema_pb2.Schema) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV's statistics of the gzipped tf.Examples in `files`, in this process (raises Declined, see above)."""
    try:
        decoder = examples_io.ExampleDecoder(schema)
    except examples_io.NotCanonical as e:
        raise Declined(str(e)) from e
    options = stats_options.StatsOptions(schema=schema)
    generators = tfdv_compat.exact_generators(options)
    exact = generators is not None
    if not exact:
        generators = stats_impl.get_generators(options, in_memory=True)
    accumulators = [g.create_accumulator() for g in generators]
    for records in _batches(files):
        try:
            batch = decoder.decode(records)
        except examples_io.NotCanonical as e:
            raise Declined(str(e)) from e
        accumulators = [g.add_input(a, batch) for g, a in zip(generators, accumulators)]
    result = stats_impl.extract_statistics_output(accumulators, generators)
    dataset = result.datasets[0]
    if dataset.num_examples == 0:
        raise Declined("an empty split")  # TFX writes a placeholder of its own for one
    if not exact:
        for feature in dataset.features:
            if feature.HasField("string_stats"):
                raise Declined(f"{feature.path.step[0]}: top values are not counted exactly on this TFDV")
    return result


def _batches(files: list[str]):
    """The records in batches of _BATCH, the first record a batch of its own. The statistics list the features in
    the order their batches first have them, each batch's sorted by name (tfx_bsl's decoder), and Beam's batching of
    TFX's read starts with one record: so TFX lists the first record's features first. (A feature that neither the
    first record nor the next few have comes later in an order that depends on Beam's batch sizes, which vary from
    one of TFX's own runs to the next.)"""
    for i, records in enumerate(examples_io.record_batches(files, _BATCH)):
        if i == 0 and records.shape[0] > 1:
            yield records[:1]
            records = records[1:]
        yield records


def _split_files(examples, split: str) -> list[str]:
    try:
        return examples_io.split_files([examples], split)
    except examples_io.NotCanonical as e:
        raise Declined(str(e)) from e


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
        if not examples_io.in_process_runner(self._beam_pipeline_args):
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
