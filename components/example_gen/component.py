"""The CsvExampleGen component: with TFX's driver for local runs, without it for Kubeflow Pipelines and Vertex AI."""

from google.protobuf import struct_pb2
from tfx.components.example_gen import component as example_gen_component
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel, standard_artifacts, standard_component_specs

import contract
from components.example_gen.executor import Executor
from components.lib import spans


def split_custom_config(
    split: str, code_version: str = "", span_pattern: str = "", window: int = 0, dataset: str = ""
) -> example_gen_pb2.CustomConfig:
    """Packs the split scheme, and the span pattern and window of spanned input, into the CustomConfig.

    span_pattern: a pattern with {SPAN} or a date (components.lib.spans), relative to the input base; '' when the
      input is one file or a flat folder. window: how many of the newest spans to read (0: all).
    dataset: the dataset spec (DatasetSpec.to_json) the files are read by; '' for the default (ULB) one.
    code_version (the fingerprint of this reader's code) is carried only so that a change to the code changes
    the component's cache key and re-runs it.
    """
    if split not in contract.SPLIT_SCHEMES:
        raise ValueError(f"unknown split scheme {split!r}; expected one of {contract.SPLIT_SCHEMES}")
    if span_pattern:
        spans.check(span_pattern)
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    fields = {
        "split": struct_pb2.Value(string_value=split),
        "code_version": struct_pb2.Value(string_value=code_version),
        "span_pattern": struct_pb2.Value(string_value=span_pattern),
        "window": struct_pb2.Value(number_value=window),
    }
    if dataset:
        fields["dataset"] = struct_pb2.Value(string_value=dataset)
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct_pb2.Struct(fields=fields))
    return config


def _spec(input_base, input_pattern: str, split: str, code_version: str, span_pattern: str, window: int, dataset: str):
    """The FileBasedExampleGen spec of this reader: one input pattern, the contract's splits, the split scheme."""
    pattern = spans.glob_of(span_pattern) if span_pattern else input_pattern
    return standard_component_specs.FileBasedExampleGenSpec(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=pattern)]),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                    for name, buckets in contract.SPLIT_BUCKETS.items()
                ]
            )
        ),
        custom_config=split_custom_config(split, code_version, span_pattern, window, dataset),
        range_config=None,
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        examples=channel.Channel(type=standard_artifacts.Examples),
    )


class CsvExampleGen(example_gen_component.FileBasedExampleGen):
    """CsvExampleGen with this project's reader; keeps the stock component id. For local runs: TFX's driver
    fingerprints the input files before the cache lookup, so changed data re-runs the component."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        input_pattern: str,
        split: str,
        code_version: str = "",
        span_pattern: str = "",
        window: int = 0,
        dataset: str = "",
    ):
        """Args: input_base: the folder; input_pattern: file glob inside it; split: 'time' or 'random';
        code_version: the fingerprint of this code, part of the cache key; span_pattern: for input in spans, their
        pattern with {SPAN} or a date (input_pattern is then ignored); window: the newest spans to read (0: all);
        dataset: the dataset spec as JSON (DatasetSpec.to_json; '' for the default).

        With spans, TFX's driver fingerprints every file of every span (the input pattern is the span pattern with
        '*' for its placeholders), so a new span re-runs the component; the executor picks the window at run time."""
        spec = _spec(input_base, input_pattern, split, code_version, span_pattern, window, dataset)
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)


class CsvExampleGenTask(base_beam_component.BaseBeamComponent):
    """The same component without TFX's driver, for Kubeflow Pipelines and Vertex AI (id CsvExampleGen).

    TFX compiles a FileBasedExampleGen's driver into the container's lifecycle.preCacheCheck hook, which nothing in
    the open-source Kubeflow Pipelines backend runs. This executor needs no driver (it finds the files and spans at
    run time); the compiled task is not cached instead (pipeline.runners.kubeflow), since no cache key there can
    see the files.
    """

    SPEC_CLASS = standard_component_specs.FileBasedExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self, input_base, input_pattern: str, split: str, code_version="", span_pattern="", window=0, dataset=""
    ):
        """Args as CsvExampleGen's."""
        super().__init__(spec=_spec(input_base, input_pattern, split, code_version, span_pattern, window, dataset))
        self.with_id(CsvExampleGen.__name__)
