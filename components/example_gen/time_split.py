"""The time split: rows ordered by Time and cut at its quantiles, so every later split holds only later rows."""

import functools

import apache_beam as beam
from google.protobuf import json_format
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components.example_gen.inputs import context_files, dataset, input_files
from components.example_gen.records import CsvToTimedRecords

# Enough quantiles that a cut lands within 0.1% of its target share.
_NUM_QUANTILES = 1001


def time_cuts(quantiles: list[float], shares: list[float]) -> list[float]:
    """The Time values at the cumulative shares of all splits but the last."""
    if not quantiles:
        return []
    last = len(quantiles) - 1
    cuts, total = [], 0.0
    for share in shares[:-1]:
        total += share
        cuts.append(quantiles[round(total * last)])
    return cuts


def time_partition(timed: tuple[float | None, bytes], num_partitions: int, cuts: list[float]) -> int:
    time = timed[0]
    if time is None:
        # No usable Time: the row goes to the first split, where the
        # ExampleValidator reports the missing or malformed feature.
        return 0
    for index, cut in enumerate(cuts):
        if time < cut:
            return index
    return num_partitions - 1


def split_block(block: tuple[list, list[bytes]], num_partitions: int, cuts: list[float]):
    """(split index, its records) for each split that has rows of the block, in the block's order (time_partition
    for each row)."""
    parts: dict[int, list[bytes]] = {}
    for timed in zip(*block):
        parts.setdefault(time_partition(timed, num_partitions, cuts), []).append(timed[1])
    return sorted(parts.items())


def _split_index(part: tuple[int, list[bytes]], num_partitions: int) -> int:
    return part[0]


def _records(part: tuple[int, list[bytes]]) -> list[bytes]:
    return part[1]


def time_splits(pipeline: beam.Pipeline, exec_properties: dict, careful: bool) -> dict:
    """Split name -> PCollection of lists of serialized tf.Examples, cut by Time at the output config's shares."""
    input_config = example_gen_pb2.Input()
    json_format.Parse(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
    output_config = example_gen_pb2.Output()
    json_format.Parse(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
    splits = output_config.split_config.splits
    if len(input_config.splits) != 1 or not splits:
        raise ValueError("the time split needs one input pattern and output splits with hash buckets")
    total = sum(s.hash_buckets for s in splits)
    shares = [s.hash_buckets / total for s in splits]

    files = input_files(exec_properties, input_config.splits[0].pattern)
    spec = dataset(exec_properties)
    context = context_files(exec_properties, files, spec)
    read = functools.partial(CsvToTimedRecords, files, careful, spec=spec, context=context)
    blocks = pipeline | "InputToRecord" >> read()
    if careful:
        times = blocks | "Time" >> beam.Map(lambda block: [t for t in block[0] if t is not None])
    else:
        # A second pass over the files reads Time alone, so the records need not wait in memory for the cuts: they
        # stream from the file to their split's output, and memory stays flat as the data grows.
        times = pipeline | "ReadTimes" >> read(times_only=True)
    cuts = (
        times
        # Lists of values: up to 17 buffers of 15,259 values (259,403 rows) Beam keeps every value, and batched or
        # not gives the same quantiles; above, both are its approximation within 1/1,000 of the rank.
        | "Quantiles" >> beam.ApproximateQuantiles.Globally(_NUM_QUANTILES, input_batched=True)
        | "Cuts" >> beam.Map(time_cuts, shares)
    )
    parts = (
        blocks
        | "SplitByTime" >> beam.FlatMap(split_block, len(splits), beam.pvalue.AsSingleton(cuts))
        | "Splits" >> beam.Partition(_split_index, len(splits))
    )
    return {
        split.name: parts[index] | f"Records[{split.name}]" >> beam.Map(_records) for index, split in enumerate(splits)
    }
