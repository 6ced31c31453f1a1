"""Reads a run's artifacts found through ML Metadata: split counts, anomalies, training facts, the pushed model."""

import json
import os

from tfx.dsl.io import fileio
from tfx.utils import io_utils

import contract
from components.anomalies_gate.component import read_anomalies, read_split_counts
from components.lib import drift
from components.pusher.component import ALREADY_SERVING, ROLLED_BACK
from pipeline.results.metadata import NodeRun, int_property, str_property


def split_names(node: NodeRun, key: str) -> list[str]:
    """The split names recorded on a node's single output artifact."""
    return json.loads(node.outputs[key][0].properties["split_names"].string_value)


def split_counts(statistics: NodeRun, label: str = contract.LABEL) -> dict[str, dict[str, int | None]]:
    """Rows and frauds per split, read from the StatisticsGen output (frauds: rows whose `label` is 1)."""
    return read_split_counts(statistics.output_uri("statistics"), split_names(statistics, "statistics"), label)


def anomalies(validator: NodeRun) -> list[dict]:
    """The anomalies the ExampleValidator found, one dict per split and feature."""
    return read_anomalies(validator.output_uri("anomalies"), split_names(validator, "anomalies"))


def drift_comparisons(distribution_validator: NodeRun) -> list[dict]:
    """What the DistributionValidator measured, per comparison (components.lib.drift.read_comparisons)."""
    return drift.read_comparisons(
        distribution_validator.output_uri("anomalies"), split_names(distribution_validator, "anomalies")
    )


def spans_read(example_gen: NodeRun) -> dict | None:
    """The spans CsvExampleGen read (pattern, window labels oldest first, previous span), None without spans."""
    examples = example_gen.outputs["examples"][0]
    pattern = str_property(examples, "span_pattern")
    if not pattern:
        return None
    window = json.loads(str_property(examples, "spans"))
    return {
        "pattern": pattern,
        "window": window,
        "newest": window[-1],
        "previous": str_property(examples, "previous_span") or None,
    }


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


def tuning(tuner: NodeRun) -> dict:
    """What the Tuner found: the best values (applied by the Trainer) and each trial's values and eval PR-AUC."""
    best, trials = (
        json.loads(io_utils.read_string_file(io_utils.get_only_uri_in_dir(tuner.output_uri(key))))
        for key in ("best_hyperparameters", "tuner_results")
    )
    return {"best": best.get("values", {}), "trials": trials}


def operating_threshold(trainer: NodeRun) -> dict:
    """The operating threshold saved next to the Trainer's model: threshold, policy, target_met, eval counts."""
    with fileio.open(_model_file(trainer, contract.OPERATING_THRESHOLD)) as f:
        return json.load(f)


def pushed_model(pusher: NodeRun) -> str | None:
    """Where the blessed model serves (where the Pusher put it, or the version that already was this model), or
    None when it pushed nothing."""
    pushed = pusher.outputs["pushed_model"][0]
    return str_property(pushed, "pushed_destination") if int_property(pushed, "pushed") == 1 else None


def already_serving(pusher: NodeRun) -> bool:
    """Did the Pusher find this very model serving already (same training identity), and so copy nothing?"""
    return int_property(pusher.outputs["pushed_model"][0], ALREADY_SERVING) == 1


def rolled_back_version(pusher: NodeRun) -> int | None:
    """The version a rollback took this same model out as, when the Pusher refused to push it again."""
    return int_property(pusher.outputs["pushed_model"][0], ROLLED_BACK) or None
