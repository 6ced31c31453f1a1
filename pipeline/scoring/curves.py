"""Curves computed exactly from a model's scores: ROC and precision-recall points, their areas, operating points.

numpy only; the precision/recall sweep is the one the Trainer chooses its operating threshold with.
"""

import numpy as np

import contract
from trainer import threshold as threshold_lib


def curves(labels: np.ndarray, scores: np.ndarray) -> dict:
    """ROC and precision-recall points and their areas, every distinct score a cut.

    Returns:
      fpr, tpr: the ROC points from (0, 0) on; precision, recall: the PR points, one per cut that flags
      something; roc_auc: the trapezoid area under the ROC; ap: average precision, each step in recall weighted
      by the precision reached there (scikit-learn's definition).
    """
    pr = threshold_lib.precision_recall(labels, scores)
    negatives = max(len(np.ravel(labels)) - pr.positives, 1)
    fpr = pr.fp / negatives
    tpr = pr.recall
    ap = float(np.sum(np.diff(tpr) * pr.precision[1:]))
    roc_auc = float(np.trapz(np.r_[tpr, 1.0], np.r_[fpr, 1.0]))
    return {"fpr": fpr, "tpr": tpr, "precision": pr.precision[1:], "recall": tpr[1:], "roc_auc": roc_auc, "ap": ap}


def operating_points(scored: dict, threshold) -> dict:
    """Per key: the confusion counts, precision, recall and false positive rate at a threshold (or per-key ones)."""
    points = {}
    for key, s in scored.items():
        at = threshold[key] if isinstance(threshold, dict) else threshold
        c = threshold_lib.confusion(s.labels, s.probability, at)
        negatives = c["fp"] + c["tn"]
        points[key] = {**c, "fpr": c["fp"] / negatives if negatives else float("nan")}
    return points


def separating_features(columns: dict, labels: np.ndarray, count: int = 2, candidates=contract.V_FEATURES) -> list[str]:
    """The candidate features whose fraud and normal means differ most, in pooled standard deviations (missing
    values left out)."""
    fraud = labels.astype(bool)

    def separation(name):
        x = columns[name]
        present = ~np.isnan(x)
        if not present.all():
            x, where = x[present], fraud[present]
        else:
            where = fraud
        std = np.std(x) or 1.0
        if not where.any() or where.all():
            return 0.0
        return abs(np.mean(x[where]) - np.mean(x[~where])) / std

    return sorted(candidates, key=separation, reverse=True)[:count]
