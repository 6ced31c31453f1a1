"""TensorFlow Data Validation: its in-memory statistics, with the top values and distinct counts of TFX's Beam path.

Replaces: in the generators `tfdv.generate_statistics_in_memory` runs (`stats_impl.get_generators(in_memory=True)`),
the sketch of top values and distinct counts (TopKUniquesSketchStatsGenerator: a Misra-Gries sketch of 1,024
counters and a KMV sketch, exact only up to 1,024 distinct values) with exact counts as TFDV's Beam generator makes
them (TopKUniquesStatsGenerator, what TFX's StatisticsGen runs): each batch's value counts by TFDV's own
`_to_topk_tuples` (private), summed, the top ones chosen as Beam's `Top` chooses them (the largest (count, value)
pairs, largest first), and the protos made by TFDV's own functions for that generator.
Why: components/statistics_gen computes a split's statistics in this process; with sketches, a split with a string
feature of more than 1,024 distinct values (an id, a card, a terminal: any log of another shape) went back to TFX's
Beam executor, several times slower.
Compared with TFX's own path by: tests/test_statistics_gen_executor.py (the in-process statistics against TFX's
executor's, on the ULB fixture and on a simulated log with ids of thousands of values); on another version, the
sketches stay and every split with a string feature goes to TFX's executor (tests/test_compat_unit.py).
"""

import collections
import heapq

from tensorflow_data_validation.statistics import stats_impl, stats_options
from tensorflow_data_validation.statistics.generators import (
    stats_generator,
    top_k_uniques_sketch_stats_generator,
    top_k_uniques_stats_generator,
)
from tensorflow_data_validation.utils import schema_util, top_k_uniques_stats_util
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx_bsl.statistics import merge_util

import compat

DISTRIBUTIONS = ("tensorflow-data-validation",)

# The counters of TFDV's sketch of top values: past this many distinct values its counts are estimates.
DISTINCT_IN_SKETCH = stats_impl._DEFAULT_MG_SKETCH_SIZE


class ExactTopKUniques(stats_generator.CombinerStatsGenerator):
    """Top values and distinct counts of the categorical features, counted exactly, as TFX's Beam executor's
    TopKUniquesStatsGenerator makes them (unweighted: the statistics here have no example weights)."""

    def __init__(self, options: stats_options.StatsOptions):
        super().__init__("ExactTopKUniques", options.schema)
        schema = options.schema
        self._bytes_features = frozenset(schema_util.get_bytes_features(schema) if schema else [])
        self._categorical_numeric = schema_util.get_categorical_numeric_feature_types(schema) if schema else {}
        self._weights = options.example_weight_map
        self._top = options.num_top_values
        self._buckets = options.num_rank_histogram_buckets
        self._threshold = options.frequency_threshold

    def create_accumulator(self) -> collections.Counter:
        return collections.Counter()  # (feature path's steps, value) -> count

    def add_input(self, accumulator, input_record_batch):
        tuples = top_k_uniques_stats_generator._to_topk_tuples(
            (None, input_record_batch), self._bytes_features, self._categorical_numeric, self._weights
        )
        for (_, steps, value), (count, _) in tuples:
            accumulator[steps, value] += count
        return accumulator

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for accumulator in accumulators:
            merged.update(accumulator)
        return merged

    def extract_output(self, accumulator):
        by_feature = collections.defaultdict(list)
        for (steps, value), count in accumulator.items():
            by_feature[steps].append((count, value))
        outputs = []
        for steps, counts in by_feature.items():
            top = heapq.nlargest(max(self._top, self._buckets), counts)  # Beam's Top: largest first
            outputs.append(
                top_k_uniques_stats_util.make_dataset_feature_stats_proto_topk_single(
                    feature_path_tuple=steps,
                    value_count_list=[top_k_uniques_stats_util.FeatureValueCount(v, c) for c, v in top],
                    is_weighted_stats=False,
                    num_top_values=self._top,
                    frequency_threshold=self._threshold,
                    num_rank_histogram_buckets=self._buckets,
                )
            )
            outputs.append(top_k_uniques_stats_util.make_dataset_feature_stats_proto_unique_single(steps, len(counts)))
        merged = merge_util.merge_dataset_feature_statistics(outputs)
        return merged.datasets[0] if merged.datasets else statistics_pb2.DatasetFeatureStatistics()


def exact_generators(options: stats_options.StatsOptions) -> list | None:
    """TFDV's in-memory generators with ExactTopKUniques for its sketch, where TFDV is the version this was
    written against and the options have no example weights; else None (the caller keeps to TFX's executor for
    top values)."""
    if not compat.supported("tfdv", *DISTRIBUTIONS) or options.example_weight_map.all_weight_features():
        return None
    sketch = top_k_uniques_sketch_stats_generator.TopKUniquesSketchStatsGenerator
    return [
        ExactTopKUniques(options) if isinstance(g, sketch) else g
        for g in stats_impl.get_generators(options, in_memory=True)
    ]
