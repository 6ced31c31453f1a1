"""The operating threshold: chosen on eval scores for a precision target, for costs, or fixed; and its flags."""

import argparse

import numpy as np
import pytest

from pipeline.cli.build import threshold_policy
from pipeline.cli.flags import UsageError
from trainer.hparams import ThresholdPolicy
from trainer.threshold import choose, confusion, precision_lower_bound, sweep


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


def _lower(c, z):
    return float(precision_lower_bound(c["tp"], c["tp"] + c["fp"], z))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", [0.5, 0.8, 0.9])
@pytest.mark.parametrize("z", [0.0, 0.5, 1.0])
def test_the_precision_target_is_met_with_the_most_recall(seed, target, z):
    y, p = _scores(seed)
    chosen = choose(ThresholdPolicy(kind="precision", min_precision=target, confidence_z=z), y, p)
    assert chosen["target_met"] is True
    got = confusion(y, p, chosen["threshold"])
    assert got == chosen["eval"]
    assert chosen["eval_precision_lower_bound"] == pytest.approx(_lower(got, z))
    assert got["precision"] >= chosen["eval_precision_lower_bound"] >= target
    best_recall = max(
        c["recall"] for t in _every_cut(p) if (c := confusion(y, p, t))["tp"] + c["fp"] and _lower(c, z) >= target
    )
    assert got["recall"] == best_recall


def test_the_wilson_lower_bound():
    # Known values: 4 of 4 at z = 1 is exactly 0.8; 8 of 10 at z = 1.96 is 0.4902 (the textbook 95% interval).
    assert precision_lower_bound(4, 4, 1.0) == pytest.approx(0.8)
    assert precision_lower_bound(8, 10, 1.96) == pytest.approx(0.4902, abs=1e-4)
    tp = np.array([0, 3, 8, 80, 800])
    n = np.array([0, 4, 10, 100, 1000])
    assert precision_lower_bound(tp, n, 0.0) == pytest.approx([0.0, 0.75, 0.8, 0.8, 0.8])
    # The same precision counts for more the more rows it rests on, and less the more confidence is asked.
    at_one = precision_lower_bound(tp, n, 1.0)
    assert at_one[0] == 0.0 and np.all(np.diff(at_one[2:]) > 0)
    assert np.all(precision_lower_bound(tp[1:], n[1:], 2.0) < at_one[1:])


def test_a_target_reached_on_a_few_lucky_frauds_is_not_met_with_confidence():
    # The top 5 scores are 4 frauds and a normal row: precision 0.8, but resting on five rows.
    y = np.array([1, 1, 0, 1, 1] + [0, 1] * 10)
    p = np.linspace(0.99, 0.01, len(y)).astype(np.float32)
    assert choose(ThresholdPolicy(confidence_z=0.0), y, p)["target_met"] is True
    chosen = choose(ThresholdPolicy(confidence_z=1.0), y, p)
    assert chosen["target_met"] is False
    assert chosen["eval_precision_lower_bound"] < 0.8
    # The fallback is the cut whose lower bound is highest.
    cuts = _every_cut(p)
    assert chosen["eval_precision_lower_bound"] == pytest.approx(
        max(_lower(c, 1.0) for t in cuts if (c := confusion(y, p, t))["tp"] + c["fp"])
    )


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
    values = {"min_precision": None, "confidence_z": None, "fn_cost": None, "fp_cost": None, "threshold": None}
    values.update({"alerts_per_day": None, **given})
    return argparse.Namespace(**values)


def test_threshold_flags():
    assert threshold_policy(_args()) == ThresholdPolicy()
    assert threshold_policy(_args(min_precision=0.9)) == ThresholdPolicy(kind="precision", min_precision=0.9)
    assert threshold_policy(_args(confidence_z=0.0)) == ThresholdPolicy(confidence_z=0.0)
    assert threshold_policy(_args(min_precision=0.7, confidence_z=2.0)) == ThresholdPolicy(
        min_precision=0.7, confidence_z=2.0
    )
    with pytest.raises(UsageError, match="goes with the precision target"):
        threshold_policy(_args(threshold=0.5, confidence_z=1.0))
    with pytest.raises(UsageError, match="confidence_z"):
        threshold_policy(_args(confidence_z=-1.0))
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


def test_a_policy_saved_before_the_confidence_existed_chose_on_the_eval_precision():
    old = {"kind": "precision", "min_precision": 0.8, "fn_cost": 0.0, "fp_cost": 0.0, "value": 0.5}
    assert ThresholdPolicy.from_dict(old).confidence_z == 0.0
    assert ThresholdPolicy.from_dict(ThresholdPolicy().to_dict()) == ThresholdPolicy()
    assert "Wilson" in ThresholdPolicy().describe() and "Wilson" not in ThresholdPolicy.from_dict(old).describe()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("per_day", "days"), [(10.0, 2.5), (33.0, 1.0), (0.4, 3.0)])
def test_the_alert_budget_gives_the_most_recall_within_the_alerts_it_promised(seed, per_day, days):
    y, p = _scores(seed)
    chosen = choose(ThresholdPolicy(kind="alerts", alerts_per_day=per_day), y, p, days)
    budget = int(np.floor(per_day * days))
    alerts = chosen["alerts"]
    flagged = int(np.sum(p >= np.float32(chosen["threshold"])))
    # The count it promised is the count on eval, and within the budget ...
    assert alerts["eval_alerts"] == flagged <= budget == alerts["eval_budget"]
    assert alerts["eval_alerts_per_day"] == pytest.approx(flagged / days) and alerts["eval_alerts_per_day"] <= per_day
    assert alerts["precision_at_budget"] == (chosen["eval"]["precision"] if flagged else None)
    # ... and no cut within the budget catches more frauds (brute force over every cut).
    best = max((int(np.sum((p >= c) & (y == 1))) for c in _every_cut(p) if np.sum(p >= c) <= budget), default=0)
    assert chosen["eval"]["tp"] == best
    assert chosen["target_met"] is bool(budget >= np.sum(p == p.max()))


def test_the_alert_budget_flag_is_a_policy_of_its_own():
    assert threshold_policy(_args(alerts_per_day=40.0)) == ThresholdPolicy(kind="alerts", alerts_per_day=40.0)
    with pytest.raises(UsageError, match="positive"):
        threshold_policy(_args(alerts_per_day=0.0))
    with pytest.raises(UsageError, match="one way"):
        threshold_policy(_args(alerts_per_day=5.0, min_precision=0.9))
    with pytest.raises(ValueError, match="days"):
        choose(ThresholdPolicy(kind="alerts", alerts_per_day=5.0), *_scores())
