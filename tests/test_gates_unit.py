"""The blessing gates' configuration: checked values, and TFMA thresholds on the overall slice only."""

import pytest

from pipeline.eval_config import eval_config
from pipeline.gates import GateConfig


def test_gates_apply_to_the_overall_slice_only():
    config = eval_config(GateConfig())
    gated = {}
    for metric in (m for spec in config.metrics_specs for m in spec.metrics):
        for per_slice in metric.per_slice_thresholds:
            gated[metric.class_name] = [list(spec.feature_keys) for spec in per_slice.slicing_specs]
        assert not metric.HasField("threshold")
    assert gated == {"AUCPrecisionRecall": [[]], "RecallAtPrecision": [[]]}


def test_gate_values_are_checked():
    with pytest.raises(ValueError, match="min_pr_auc"):
        GateConfig(min_pr_auc=1.5)
    with pytest.raises(ValueError, match="max_recall_drop"):
        GateConfig(max_recall_drop=-0.1)
