"""python -m tests.beam_cluster.probe OUTPUT BEAM_ARG...: a small Beam job whose only step is a function of the
project's (`contract.split_dir`, pickled by reference), so a worker runs it only if it can import the project.

The engines tests run it with the cluster's booted workers (Beam's boot in a fresh container without the project)
and --setup_file: what it writes to OUTPUT-* proves that boot fetched the staged project from the job server and
installed it, as a stock Beam container does, while the pipeline's own run uses the workers that have it already.
"""

import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

import contract

SPLITS = ("train", "eval", "test", "serving")


def main(output: str, beam_args: list[str]) -> None:
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        _ = (
            pipeline
            | beam.Create(SPLITS)
            | beam.Reshuffle()  # the elements spread over the workers of every TaskManager
            | beam.Map(contract.split_dir)
            | beam.io.WriteToText(output)
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
