"""The blessing gates' configuration: checked values, and TFMA thresholds on the overall slice only."""

import json

import pytest

from pipeline.definition.eval_config import eval_config
from pipeline.definition.gates import GateConfig


def test_gates_apply_to_the_overall_slice_only():
    config = eval_config(GateConfig())
    gated = {}
    for metric in (m for spec in config.metrics_specs for m in spec.metrics):
        for per_slice in metric.per_slice_thresholds:
            gated[json.loads(metric.config)["name"]] = [list(spec.feature_keys) for spec in per_slice.slicing_specs]
        assert not metric.HasField("threshold")
    assert gated == {"pr_auc": [[]], "recall_at_precision": [[]]}


def test_gate_values_are_checked():
    with pytest.raises(ValueError, match="min_pr_auc"):
        GateConfig(min_pr_auc=1.5)
    with pytest.raises(ValueError, match="max_recall_drop"):
        GateConfig(max_recall_drop=-0.1)


@pytest.mark.parametrize("has_baseline", [True, False])
def test_the_decision_counts_are_computed_for_the_candidate_only(has_baseline):
    """On a retrain TFMA scores two models; the gates read only the probability metrics of the baseline, so the
    decision counts are not computed for it (docs/benchmarks.md). Without a baseline the one model gets both."""
    import tensorflow_model_analysis as tfma

    import contract

    config = tfma.utils.update_eval_config_with_defaults(
        eval_config(GateConfig()), has_baseline=has_baseline, rubber_stamp=True
    )
    models = {tuple(spec.output_names): list(spec.model_names) for spec in config.metrics_specs}
    both = [tfma.CANDIDATE_KEY, tfma.BASELINE_KEY] if has_baseline else [""]
    assert models[(contract.PROBABILITY_OUTPUT,)] == both
    assert models[(contract.DECISION_OUTPUT,)] == ([tfma.CANDIDATE_KEY] if has_baseline else [""])
