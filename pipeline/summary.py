"""Builds summary.json from a run's ML Metadata and artifacts: splits, anomalies, component states, status."""

import json
import os

from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.dsl.io import fileio

from components.anomalies_gate import read_anomalies
from pipeline import evaluation, features
from pipeline.gates import GateConfig
from pipeline.metadata import NodeRun, int_property, str_property
from trainer.task import OPERATING_THRESHOLD, TRAINING_SUMMARY

# The SavedModel's folder inside a Trainer Model artifact (TFX 1.16).
SERVING_MODEL_DIR = "Format-Serving"

# The file StatisticsGen writes in each split folder (TFX 1.16).
STATISTICS_FILE = "FeatureStats.pb"


def split_names(node: NodeRun, key: str) -> list[str]:
    """The split names recorded on a node's single output artifact."""
    return json.loads(node.outputs[key][0].properties["split_names"].string_value)


def _frauds(dataset: statistics_pb2.DatasetFeatureStatistics) -> int | None:
    for feature in dataset.features:
        if list(feature.path.step) == [features.LABEL]:
            # The curated schema marks the label categorical, so its counts are exact top values.
            return int(sum(v.frequency for v in feature.string_stats.top_values if v.value == "1"))
    return None


def split_counts(statistics: NodeRun) -> dict[str, dict[str, int | None]]:
    """Rows and frauds per split, read from the StatisticsGen output."""
    uri = statistics.output_uri("statistics")
    counts = {}
    for split in split_names(statistics, "statistics"):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with fileio.open(os.path.join(uri, f"Split-{split}", STATISTICS_FILE), "rb") as f:
            stats.ParseFromString(f.read())
        dataset = stats.datasets[0]
        counts[split] = {"rows": int(dataset.num_examples), "frauds": _frauds(dataset)}
    return counts


def anomalies(validator: NodeRun) -> list[dict]:
    """The anomalies the ExampleValidator found, one dict per split and feature."""
    return read_anomalies(validator.output_uri("anomalies"), split_names(validator, "anomalies"))


def training(trainer: NodeRun) -> dict:
    """What the Trainer recorded with the model (counts, bias, weights, epochs), without the per-epoch history."""
    model_uri = trainer.output_uri("model")
    path = os.path.join(model_uri, SERVING_MODEL_DIR, TRAINING_SUMMARY)
    with fileio.open(path) as f:
        facts = json.load(f)
    facts.pop("history")
    facts["model_uri"] = model_uri
    facts["history_path"] = path
    return facts


def operating_threshold(trainer: NodeRun) -> dict:
    """The operating threshold saved next to the Trainer's model: threshold, policy, target_met, eval counts."""
    with fileio.open(os.path.join(trainer.output_uri("model"), SERVING_MODEL_DIR, OPERATING_THRESHOLD)) as f:
        return json.load(f)


def evaluation_summary(evaluator: NodeRun, gates: GateConfig) -> dict:
    """The test metrics overall and per slice, the blessing, the reasons when not blessed, and the baseline."""
    uri = evaluator.output_uri("evaluation")
    metrics = evaluation.read_metrics(uri)
    blessing = evaluator.outputs["blessing"][0]
    baseline = evaluator.inputs.get("baseline_model")
    candidate = {name: per_model.get(evaluation.CANDIDATE, {}) for name, per_model in metrics.items()}
    return {
        "split": "test",
        "gates": gates.to_dict(),
        "overall": candidate.get("overall", {}),
        "slices": {name: values for name, values in sorted(candidate.items()) if name != "overall"},
        "blessed": int_property(blessing, "blessed") == 1,
        "not_blessed_reasons": evaluation.read_failures(uri, metrics),
        "baseline": (
            {"model_uri": baseline[0].uri, "overall": metrics.get("overall", {}).get(evaluation.BASELINE, {})}
            if baseline
            else None
        ),
        "evaluation_uri": uri,
    }


def pushed_model(pusher: NodeRun) -> str | None:
    """Where the Pusher put the model, or None when it pushed nothing."""
    pushed = pusher.outputs["pushed_model"][0]
    return str_property(pushed, "pushed_destination") if int_property(pushed, "pushed") == 1 else None


def write(path: str, summary: dict) -> None:
    """Writes summary.json atomically so readers never see half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
