"""Card precision@k, the Fraud Detection Handbook's metric (its chapter 4.2): each day, of the k cards with the
highest score that day (a card's highest of the day), the share that had a fraud that day; the mean over the days.
What a team that can check k cards a day would find. One definition for the Evaluator's TFMA metric
(components/evaluator/metrics.py), `outcomes` (pipeline/scoring/outcomes.py) and the benches.
"""

import math

import numpy as np

import contract


class DailyBest:
    """Each (day, card)'s highest score and whether the card had a fraud that day: what card precision@k ranks.
    Rows without a card, a time or a finite score are left out. Two of them merge (a TFMA accumulator)."""

    def __init__(self):
        self.best: dict = {}

    def add(self, time: float, card, score: float, label: int) -> None:
        if card is None or card in ("", b"") or not math.isfinite(time) or not math.isfinite(score):
            return
        key = (math.floor(time / contract.SECONDS_PER_DAY), card)
        seen = self.best.get(key)
        if seen is None:
            self.best[key] = (score, int(label))
        else:
            self.best[key] = (max(seen[0], score), max(seen[1], int(label)))

    def merge(self, other: "DailyBest") -> "DailyBest":
        for key, (score, label) in other.best.items():
            seen = self.best.get(key)
            self.best[key] = (score, label) if seen is None else (max(seen[0], score), max(seen[1], label))
        return self

    def precision(self, k: int) -> float | None:
        """The mean over days of the frauds among the day's k best cards, over k (a day with fewer cards counts the
        missing places as misses, as the Handbook does); None without a day. Ties rank by the card's id. The days
        are averaged in their order, so the rows' order (Beam's, in TFMA's combiners) does not move the last bit."""
        days: dict = {}
        for (day, card), (score, label) in self.best.items():
            days.setdefault(day, []).append((-score, str(card), label))
        if not days:
            return None
        return float(np.mean([sum(label for *_, label in sorted(days[day])[:k]) / k for day in sorted(days)]))


def card_precision_at_k(times, cards, labels, scores, k: int) -> float | None:
    """Card precision@k of rows: event times (seconds), card ids, 0/1 labels and scores, one each a row."""
    best = DailyBest()
    for time, card, label, score in zip(np.asarray(times, np.float64), cards, labels, np.asarray(scores, np.float64)):
        best.add(float(time), card, float(score), int(label))
    return best.precision(k)
