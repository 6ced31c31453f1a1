"""Choosing the operating threshold on the eval split's predictions (numpy only, no TensorFlow)."""

import dataclasses

import numpy as np

from trainer.hparams import ThresholdPolicy


def confusion(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """TP, FP, TN, FN, precision and recall when flagging score >= threshold."""
    y = np.asarray(labels).ravel().astype(bool)
    flagged = np.asarray(scores).ravel() >= np.float32(threshold)
    tp = int(np.sum(flagged & y))
    fp = int(np.sum(flagged & ~y))
    fn = int(np.sum(~flagged & y))
    tn = int(np.sum(~flagged & ~y))
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
    }


def sweep(labels: np.ndarray, scores: np.ndarray):
    """Every distinct way to flag the top-scored rows, most selective first.

    Returns:
      (cuts, tp, fp): cuts[0] is above every score (nothing flagged); cuts[i] for i >= 1 lies strictly between
      the i-th highest distinct score and the next lower one, so 'score >= cuts[i]' flags exactly the rows with
      the i highest distinct scores, with tp[i] frauds and fp[i] normal rows among them. The cut sits midway
      between scores so that a float rounding of a score does not move a row across it.
    """
    y = np.asarray(labels).ravel().astype(np.int64)
    s = np.asarray(scores).ravel().astype(np.float32)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last row of each distinct score
    tp = np.r_[0, np.cumsum(y)[last]]
    fp = np.r_[0, np.cumsum(1 - y)[last]]
    distinct = s[last]
    lower = np.r_[distinct[1:], np.float32(0.0)]
    cuts = ((distinct.astype(np.float64) + lower) / 2).astype(np.float32)
    # Where two scores are too close for a float32 midway, cut at the score itself.
    cuts = np.where((cuts > lower) & (cuts <= distinct), cuts, distinct)
    # Above every score, so that it flags nothing (also when the highest score is exactly 1.0).
    top = np.nextafter(distinct[0], np.float32(np.inf)) if len(distinct) else np.float32(1.0)
    return np.r_[np.float32(top), cuts], tp, fp


def precision_lower_bound(tp, flagged, z: float) -> np.ndarray:
    """The lower end of the Wilson score interval for precision tp/flagged at z standard errors (0 where nothing is
    flagged). At z = 0 it is the precision itself; it is below it by more the fewer rows are flagged, so a cut
    that reaches a precision target on a handful of eval frauds by luck does not count as meeting it.
    """
    tp = np.asarray(tp, np.float64)
    n = np.asarray(flagged, np.float64)
    safe = np.maximum(n, 1.0)
    p = tp / safe
    z2 = z * z
    centre = p + z2 / (2 * safe)
    spread = z * np.sqrt(p * (1 - p) / safe + z2 / (4 * safe * safe))
    return np.where(n > 0, (centre - spread) / (1 + z2 / safe), 0.0)


@dataclasses.dataclass(frozen=True)
class PrecisionRecall:
    """Precision and recall at every cut of sweep(): the one place both the threshold choice and the report use.

    Attributes:
      cuts, tp, fp: as sweep() returns them (cuts[0] flags nothing).
      positives: the frauds among the labels.
      precision: tp / (tp + fp), and 1.0 where nothing is flagged (the convention of a PR curve's start).
      recall: tp / positives (0 when there is no fraud).
    """

    cuts: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: int
    precision: np.ndarray
    recall: np.ndarray

    @property
    def flagged(self) -> np.ndarray:
        return self.tp + self.fp


def precision_recall(labels: np.ndarray, scores: np.ndarray) -> PrecisionRecall:
    """Precision and recall for every distinct cut of the scores (see sweep)."""
    cuts, tp, fp = sweep(labels, scores)
    positives = int(np.asarray(labels).sum())
    flagged = tp + fp
    precision = np.divide(tp, flagged, out=np.ones(len(tp)), where=flagged > 0)
    recall = tp / positives if positives else np.zeros(len(tp))
    return PrecisionRecall(cuts, tp, fp, positives, precision, recall)


def choose(policy: ThresholdPolicy, labels: np.ndarray, scores: np.ndarray, days: float | None = None) -> dict:
    """The operating threshold of the policy on these (eval) labels and scores, and how it does on them.

    Args:
      days: how many days the eval rows span (for the 'alerts' policy: its budget is alerts_per_day * days).

    Returns:
      {"threshold", "policy", "target_met", "eval": confusion at the threshold (+ expected_cost for 'cost'),
      and for 'precision' "eval_precision_lower_bound" at the threshold; for 'alerts' "alerts" (the budget on
      eval, the eval days, the alerts at the threshold and per day)}. target_met is False when no threshold's
      lower bound reaches the precision target (the threshold with the highest lower bound is used then), or when
      even the highest cut flags more than the alert budget (nothing is flagged then).
    """
    y = np.asarray(labels).ravel().astype(np.int64)
    positives = int(y.sum())
    if len(y) == 0 or positives == 0:
        raise ValueError("the eval split holds no fraud: an operating threshold cannot be chosen on it")
    target_met = None
    lower_at = None
    if policy.kind == "fixed":
        threshold = float(policy.value)
    else:
        pr = precision_recall(y, scores)
        tp = pr.tp
        if policy.kind == "precision":
            # Flagging nothing is no way to meet a precision target (its lower bound is 0).
            lower = precision_lower_bound(tp, pr.flagged, policy.confidence_z)
            meets = (lower >= policy.min_precision) & (pr.flagged > 0)
            target_met = bool(meets.any())
            if target_met:
                # The most frauds caught; of equal recall, the highest cut (fewest false alarms).
                best = int(np.argmax(np.where(meets, tp, -1)))
            else:
                best = int(np.lexsort((-tp, -lower))[0])
            lower_at = float(lower[best])
        elif policy.kind == "alerts":
            if not days or days <= 0:
                raise ValueError("the alert budget needs the days the eval split spans")
            allowed = int(np.floor(policy.alerts_per_day * days + 1e-9))
            within = np.flatnonzero(pr.flagged <= allowed)
            # The lowest cut within the budget catches the most frauds (cut 0 flags nothing, so one always is).
            best = int(within[-1])
            target_met = best > 0 or allowed == 0
        else:
            cost = policy.fn_cost * (positives - tp) + policy.fp_cost * pr.fp
            best = int(np.argmin(cost))  # the first minimum is the highest cut
        threshold = float(pr.cuts[best if best is not None else 0])
    result = confusion(y, scores, threshold)
    if policy.kind == "cost":
        result["expected_cost"] = float(policy.fn_cost * result["fn"] + policy.fp_cost * result["fp"])
    chosen = {"threshold": threshold, "policy": policy.to_dict(), "target_met": target_met, "eval": result}
    if lower_at is not None:
        chosen["eval_precision_lower_bound"] = lower_at
    if policy.kind == "alerts":
        flagged = result["tp"] + result["fp"]
        chosen["alerts"] = {
            "per_day_budget": policy.alerts_per_day,
            "eval_days": float(days),
            "eval_budget": int(np.floor(policy.alerts_per_day * days + 1e-9)),
            "eval_alerts": int(flagged),
            "eval_alerts_per_day": float(flagged / days),
            "precision_at_budget": float(result["tp"] / flagged) if flagged else None,
        }
    return chosen
