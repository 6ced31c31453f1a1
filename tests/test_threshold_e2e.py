"""The operating threshold end to end: chosen on eval, carried by the model, used by its serving signature."""

import json
import os

import numpy as np
import pytest

import contract
from pipeline.scoring import splits as scoring
from trainer.hparams import ThresholdPolicy
from trainer.threshold import confusion, precision_lower_bound, sweep

pytestmark = pytest.mark.e2e


def _scored(run, model_dir, splits=contract.SPLITS):
    _, serve = scoring.load_model(model_dir)
    examples = run.summary["artifacts"]["examples"]
    return {split: scoring.score_split(examples, split, serve) for split in splits}


@pytest.fixture(scope="module")
def pushed(time_run):
    """The pushed model's folder and its three splits scored by its serving signature."""
    model_dir = time_run.summary["pushed_model"]
    return model_dir, _scored(time_run, model_dir)


def test_the_threshold_travels_with_the_pushed_model(time_run, pushed):
    model_dir, _ = pushed
    with open(os.path.join(model_dir, contract.OPERATING_THRESHOLD)) as f:
        carried = json.load(f)
    summary = time_run.summary["operating_threshold"]
    assert carried == {
        k: summary[k] for k in ("threshold", "policy", "target_met", "eval", "eval_precision_lower_bound")
    }
    assert carried["policy"]["kind"] == "precision" and carried["policy"]["min_precision"] == 0.8


def test_the_decision_is_probability_at_or_above_the_threshold(time_run, pushed):
    _, scored = pushed
    threshold = np.float32(time_run.summary["operating_threshold"]["threshold"])
    for split, s in scored.items():
        assert s.decision.dtype == np.int64
        np.testing.assert_array_equal(s.decision, (s.probability >= threshold).astype(np.int64), err_msg=split)
        assert 0 < s.decision.sum() < len(s.decision), split


def test_the_precision_target_is_met_on_the_eval_split(time_run, pushed):
    _, scored = pushed
    chosen = time_run.summary["operating_threshold"]
    eval_ = scored["eval"]
    flagged = eval_.decision.astype(bool)
    frauds = eval_.labels.astype(bool)
    assert chosen["target_met"] is True
    policy = ThresholdPolicy.from_dict(chosen["policy"])
    assert policy == ThresholdPolicy()
    tp, fp = (flagged & frauds).sum(), (flagged & ~frauds).sum()
    lower = precision_lower_bound(tp, tp + fp, policy.confidence_z)
    assert tp / (tp + fp) > lower >= policy.min_precision
    assert chosen["eval_precision_lower_bound"] == pytest.approx(float(lower))
    assert confusion(eval_.labels, eval_.probability, chosen["threshold"]) == chosen["eval"]
    # No threshold with more eval recall keeps the target (the threshold was chosen, not just acceptable).
    cuts, tp, fp = sweep(eval_.labels, eval_.probability)
    ok = (tp + fp > 0) & (precision_lower_bound(tp, tp + fp, policy.confidence_z) >= policy.min_precision)
    assert tp[ok].max() == chosen["eval"]["tp"]


def test_the_evaluator_counts_the_models_decisions(time_run, pushed):
    _, scored = pushed
    test = scored["test"]
    flagged, frauds = test.decision.astype(bool), test.labels.astype(bool)
    overall = time_run.summary["evaluation"]["overall"]
    assert overall["tp"] == (flagged & frauds).sum() and overall["fp"] == (flagged & ~frauds).sum()
    assert overall["fn"] == (~flagged & frauds).sum() and overall["tn"] == (~flagged & ~frauds).sum()
    assert time_run.summary["operating_threshold"]["test"]["precision"] == overall["precision"]


def test_a_cost_policy_minimises_the_eval_cost(lifecycle):
    run = lifecycle["impossible"]
    chosen = run.summary["operating_threshold"]
    assert chosen["policy"]["kind"] == "cost" and chosen["target_met"] is None
    assert "missed fraud at 10" in chosen["policy_description"]
    eval_ = _scored(run, run.summary["trainer"]["model_uri"], ("eval",))["eval"]
    _, tp, fp = sweep(eval_.labels, eval_.probability)
    cost = 10 * (eval_.labels.sum() - tp) + 1 * fp
    assert chosen["eval"]["expected_cost"] == cost.min()
