"""The report's curves and areas, computed from scores with the Trainer's sweep, against scikit-learn."""

import types

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from pipeline.scoring.curves import curves, operating_points
from trainer.threshold import confusion, precision_recall


def _scores(seed, n=4000, frauds=40, decimals=3):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, frauds, replace=False)] = 1
    # Rounded, so many rows share a score: ties must be handled as scikit-learn does.
    p = np.clip(rng.beta(1, 30, n) + y * rng.uniform(0, 0.9, n), 0, 1)
    return y, np.round(p, decimals).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("decimals", [2, 6])
def test_areas_equal_scikit_learns(seed, decimals):
    y, p = _scores(seed, decimals=decimals)
    c = curves(y, p)
    assert c["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert c["ap"] == pytest.approx(average_precision_score(y, p), abs=1e-9)


def test_points_equal_scikit_learns():
    y, p = _scores(3, decimals=3)
    c = curves(y, p)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(c["fpr"], fpr)
    np.testing.assert_allclose(c["tpr"], tpr)
    precision, recall, _ = precision_recall_curve(y, p)
    # scikit-learn lists the PR points from the lowest cut up and ends with (recall 0, precision 1).
    np.testing.assert_allclose(c["precision"], precision[-2::-1])
    np.testing.assert_allclose(c["recall"], recall[-2::-1])


def test_the_sweep_counts_what_each_cut_flags():
    y, p = _scores(4, n=500, frauds=25, decimals=2)
    pr = precision_recall(y, p)
    assert pr.positives == 25
    for cut, tp, fp, precision, recall in zip(pr.cuts, pr.tp, pr.fp, pr.precision, pr.recall):
        c = confusion(y, p, cut)
        assert (c["tp"], c["fp"]) == (tp, fp)
        assert recall == tp / 25
        assert precision == (tp / (tp + fp) if tp + fp else 1.0)


def test_operating_points_are_the_confusion_at_the_threshold():
    y, p = _scores(5)
    scored = {"test": types.SimpleNamespace(labels=y, probability=p)}
    point = operating_points(scored, 0.2)["test"]
    expected = confusion(y, p, 0.2)
    assert {k: point[k] for k in expected} == expected
    assert point["fpr"] == expected["fp"] / (expected["fp"] + expected["tn"])
