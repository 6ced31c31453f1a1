"""Reads a run's artifacts found through ML Metadata: split counts, anomalies, training facts, the pushed model."""

import json
import os

from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.dsl.io import fileio

import contract
from components.anomalies_gate import read_anomalies
from pipeline.results.metadata import NodeRun, int_property, str_property


def split_names(node: NodeRun, key: str) -> list[str]:
    """The split names recorded on a node's single output artifact."""
    return json.loads(node.outputs[key][0].properties["split_names"].string_value)


def _frauds(dataset: statistics_pb2.DatasetFeatureStatistics) -> int | None:
    for feature in dataset.features:
        if list(feature.path.step) == [contract.LABEL]:
            # The curated schema marks the label categorical, so its counts are exact top values.
            return int(sum(v.frequency for v in feature.string_stats.top_values if v.value == "1"))
    return None


def split_counts(statistics: NodeRun) -> dict[str, dict[str, int | None]]:
    """Rows and frauds per split, read from the StatisticsGen output."""
    uri = statistics.output_uri("statistics")
    counts = {}
    for split in split_names(statistics, "statistics"):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with fileio.open(os.path.join(uri, contract.split_dir(split), contract.STATISTICS_FILE), "rb") as f:
            stats.ParseFromString(f.read())
        dataset = stats.datasets[0]
        counts[split] = {"rows": int(dataset.num_examples), "frauds": _frauds(dataset)}
    return counts


def anomalies(validator: NodeRun) -> list[dict]:
    """The anomalies the ExampleValidator found, one dict per split and feature."""
    return read_anomalies(validator.output_uri("anomalies"), split_names(validator, "anomalies"))


def _model_file(trainer: NodeRun, name: str) -> str:
    return os.path.join(trainer.output_uri("model"), contract.SERVING_MODEL_DIR, name)


def training(trainer: NodeRun) -> dict:
    """What the Trainer recorded with the model (counts, bias, weights, epochs), without the per-epoch history."""
    path = _model_file(trainer, contract.TRAINING_SUMMARY)
    with fileio.open(path) as f:
        facts = json.load(f)
    facts.pop("history")
    facts["model_uri"] = trainer.output_uri("model")
    facts["history_path"] = path
    return facts


def operating_threshold(trainer: NodeRun) -> dict:
    """The operating threshold saved next to the Trainer's model: threshold, policy, target_met, eval counts."""
    with fileio.open(_model_file(trainer, contract.OPERATING_THRESHOLD)) as f:
        return json.load(f)


def pushed_model(pusher: NodeRun) -> str | None:
    """Where the Pusher put the model, or None when it pushed nothing."""
    pushed = pusher.outputs["pushed_model"][0]
    return str_property(pushed, "pushed_destination") if int_property(pushed, "pushed") == 1 else None
