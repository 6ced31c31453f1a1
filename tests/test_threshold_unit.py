"""The operating threshold: chosen on eval scores for a precision target, for costs, or fixed; and its flags."""

import argparse

import numpy as np
import pytest

from pipeline.cli import UsageError, threshold_policy
from trainer.hparams import ThresholdPolicy
from trainer.threshold import choose, confusion, sweep


def _scores(seed=0, n=3000, frauds=60):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, frauds, replace=False)] = 1
    # Overlapping classes, rounded so that many rows share a score (ties must be handled).
    p = np.clip(rng.normal(0.15, 0.1, n) + y * rng.normal(0.45, 0.25, n), 0, 1)
    return y, np.round(p, 3).astype(np.float32)


def _every_cut(p):
    """Brute force: every distinct score, and one above them all."""
    return np.r_[np.unique(p), np.nextafter(p.max(), np.float32(2))]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", [0.5, 0.8, 0.9])
def test_the_precision_target_is_met_with_the_most_recall(seed, target):
    y, p = _scores(seed)
    chosen = choose(ThresholdPolicy(kind="precision", min_precision=target), y, p)
    assert chosen["target_met"] is True
    got = confusion(y, p, chosen["threshold"])
    assert got == chosen["eval"]
    assert got["precision"] >= target
    best_recall = max(
        c["recall"] for t in _every_cut(p) if (c := confusion(y, p, t))["tp"] + c["fp"] and c["precision"] >= target
    )
    assert got["recall"] == best_recall


def test_an_unreachable_target_falls_back_to_the_most_precise_threshold():
    y = np.array([0, 1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5], dtype=np.float32)
    chosen = choose(ThresholdPolicy(kind="precision", min_precision=0.95), y, p)
    assert chosen["target_met"] is False
    # Flagging the top 2 gives precision 0.5 with recall 0.5; the top 4 gives 0.5 with recall 1: more recall wins.
    assert chosen["eval"]["precision"] == 0.5 and chosen["eval"]["recall"] == 1.0


@pytest.mark.parametrize("costs", [(10.0, 1.0), (100.0, 1.0), (1.0, 1.0), (1.0, 50.0)])
def test_the_cost_policy_minimises_the_expected_cost(costs):
    fn_cost, fp_cost = costs
    y, p = _scores(3)
    chosen = choose(ThresholdPolicy(kind="cost", fn_cost=fn_cost, fp_cost=fp_cost), y, p)
    brute = min(fn_cost * c["fn"] + fp_cost * c["fp"] for c in (confusion(y, p, t) for t in _every_cut(p)))
    assert chosen["eval"]["expected_cost"] == pytest.approx(brute)
    assert chosen["target_met"] is None


def test_a_fixed_threshold_is_used_as_given():
    y, p = _scores(4)
    chosen = choose(ThresholdPolicy(kind="fixed", value=0.5), y, p)
    assert chosen["threshold"] == 0.5
    assert chosen["eval"] == confusion(y, p, 0.5)


def test_cuts_fall_strictly_between_distinct_scores():
    y = np.array([1, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.9, 0.7, 0.4, 0.4, 0.1], dtype=np.float32)
    cuts, tp, fp = sweep(y, p)
    assert list(tp) == [0, 1, 2, 2, 2] and list(fp) == [0, 1, 1, 3, 4]
    assert cuts[0] > 0.9
    assert 0.7 < cuts[1] < 0.9 and 0.4 < cuts[2] < 0.7 and 0.1 < cuts[3] < 0.4 and 0.0 < cuts[4] < 0.1
    for cut, t, f in zip(cuts, tp, fp):
        c = confusion(y, p, cut)
        assert (c["tp"], c["fp"]) == (t, f)


def test_no_fraud_on_eval_is_an_error():
    with pytest.raises(ValueError, match="no fraud"):
        choose(ThresholdPolicy(), np.zeros(10), np.linspace(0, 1, 10))


def _args(**given):
    values = {"min_precision": None, "fn_cost": None, "fp_cost": None, "threshold": None, **given}
    return argparse.Namespace(**values)


def test_threshold_flags():
    assert threshold_policy(_args()) == ThresholdPolicy()
    assert threshold_policy(_args(min_precision=0.9)) == ThresholdPolicy(kind="precision", min_precision=0.9)
    assert threshold_policy(_args(fn_cost=50.0, fp_cost=1.0)) == ThresholdPolicy(kind="cost", fn_cost=50, fp_cost=1)
    assert threshold_policy(_args(threshold=0.5)) == ThresholdPolicy(kind="fixed", value=0.5)
    with pytest.raises(UsageError, match="go together"):
        threshold_policy(_args(fn_cost=5.0))
    with pytest.raises(UsageError, match="one way"):
        threshold_policy(_args(min_precision=0.9, threshold=0.5))
    with pytest.raises(UsageError, match="min_precision"):
        threshold_policy(_args(min_precision=1.5))
    with pytest.raises(UsageError, match="positive"):
        threshold_policy(_args(fn_cost=0.0, fp_cost=1.0))
