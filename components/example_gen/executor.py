"""CsvExampleGen's executor: the fast reader first, the careful one when the fast one refuses; hash or time split."""

import functools
import logging
import os
from typing import Any

import apache_beam as beam
from google.protobuf import json_format
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs

import contract
from compat import beam as beam_compat
from components.example_gen import inputs
from components.example_gen.records import GZIP_LEVEL, CsvToRecords, CsvToTimedRecords, records_of
from components.example_gen.time_split import time_splits
from components.lib import csv_contract
from components.lib.csv_contract import FastReaderRefusedError


def fast_reader_refused(error: BaseException | None) -> bool:
    """Is FastReaderRefusedError behind the error (Beam may wrap it, or on a remote runner pass only its text)?"""
    while error is not None:
        if isinstance(error, FastReaderRefusedError) or FastReaderRefusedError.__name__ in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


class Executor(BaseExampleGenExecutor):
    """Reads CSV by the feature contract (fast reader first, the careful one if needed); splits by hash or time."""

    _careful = False

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        input_config = example_gen_pb2.Input()
        json_format.Parse(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        # The checks the CLI makes before a local run starts (empty files, headers, no rows, a broken gzip file),
        # here for every runner, with the same words.
        spec = inputs.dataset(exec_properties)
        csv_contract.check_training_files(
            inputs.input_files(exec_properties, input_config.splits[0].pattern), spec.columns
        )
        try:
            self._generate(output_dict, exec_properties)
        except Exception as e:
            if self._careful or not fast_reader_refused(e):
                raise
            logging.warning("the fast CSV reader stopped (%s); reading again with the careful reader", e)
            examples = output_dict[standard_component_specs.EXAMPLES_KEY]
            for split in artifact_utils.decode_split_names(artifact_utils.get_single_instance(examples).split_names):
                uri = artifact_utils.get_split_uri(examples, split)
                if fileio.exists(uri):
                    fileio.rmtree(uri)
            self._careful = True
            self._generate(output_dict, exec_properties)

    def _generate(self, output_dict, exec_properties) -> None:
        """TFX's ExampleGen Do without its Reshuffle before writing (a quarter of this component's time on the
        full file): nothing downstream depends on the order of the records (the Trainer orders and shuffles its
        rows itself), and without it they keep the order of the input within each split."""
        input_config = example_gen_pb2.Input()
        json_format.Parse(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        json_format.Parse(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples)
        names = example_gen_utils.generate_output_split_names(input_config, output_config)
        selection = inputs.select_spans(exec_properties)
        if selection is not None:
            names += list(contract.DRIFT_PAIR)
            inputs.record_spans(artifact, selection)
        artifact.split_names = artifact_utils.encode_split_names(names)
        inputs.record_data(artifact, exec_properties, input_config.splits[0].pattern)
        with self._make_beam_pipeline() as pipeline:
            for name, records in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                prefix = os.path.join(artifact_utils.get_split_uri(examples, name), write_split.DEFAULT_FILE_NAME)
                _ = records | f"WriteSplit[{name}]" >> beam_compat.WriteRecords(prefix, ".gz", GZIP_LEVEL)
        examples_utils.set_payload_format(artifact, exec_properties[standard_component_specs.OUTPUT_DATA_FORMAT_KEY])
        examples_utils.set_file_format(artifact, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return functools.partial(CsvToRecords, careful=self._careful)

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]):
        """The train, eval and test splits (by time or hash); with spans also the newest and previous span's rows
        (the newest again when there is no previous span yet, so the drift comparison finds nothing)."""
        if inputs.split_scheme(exec_properties) == "time":
            splits = time_splits(pipeline, exec_properties, self._careful)
        else:
            splits = super().GenerateExamplesByBeam(pipeline, exec_properties)
        selection = inputs.select_spans(exec_properties)
        if selection is not None:
            baseline = selection.previous or selection.newest
            spec = inputs.dataset(exec_properties)
            for name, span in zip(contract.DRIFT_PAIR, (selection.newest, baseline)):
                context = inputs.context_files(exec_properties, span.files, spec)
                read = CsvToTimedRecords(span.files, self._careful, spec=spec, context=context)
                timed = pipeline | f"ReadSpan[{name}]" >> read
                splits[name] = timed | f"Records[{name}]" >> beam.Map(records_of)
        return splits
