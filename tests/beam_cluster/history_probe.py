"""python -m tests.beam_cluster.history_probe DATA OUTPUT BEAM_ARG...: ExampleGen's reading of a simulated log by
its spec, history windows included (components/example_gen/history.py), as a Beam job of its own, writing the
examples to OUTPUT-* as TFRecords. The engines tests run it on the cluster's worker pools and on the direct runner
and compare the windows row by row: the grouping by entity and the join by row are the runner's own."""

import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from components.example_gen.records import CsvToTimedRecords, records_of
from datasets import spec as dataset_spec

SPEC = dataset_spec.DATASETS_DIR + "/simulated/dataset.yaml"


def main(data: str, output: str, beam_args: list[str]) -> None:
    spec = dataset_spec.load(SPEC)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        _ = (
            pipeline
            | CsvToTimedRecords([data], True, spec=spec)
            | beam.FlatMap(records_of)
            | beam.io.WriteToTFRecord(output)
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
