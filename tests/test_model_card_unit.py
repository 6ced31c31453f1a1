"""The model card's intervals: the textbook values, and no arithmetic error on a slice with one fraud or none."""

import math

import pytest

from components.pusher import model_card


def test_the_wilson_interval_has_its_textbook_value():
    interval = model_card.wilson(0, 10)
    assert interval["lower_bound"] == 0.0
    assert interval["upper_bound"] == pytest.approx(0.2775, abs=1e-4)
    assert model_card.wilson(3, 0) is None


def test_the_pr_auc_interval_follows_the_number_of_frauds():
    narrow = model_card.pr_auc_interval(0.8, 400)
    wide = model_card.pr_auc_interval(0.8, 40)
    assert narrow["lower_bound"] < 0.8 < narrow["upper_bound"]
    assert wide["upper_bound"] - wide["lower_bound"] > narrow["upper_bound"] - narrow["lower_bound"]
    # The logit interval: logit(0.8) +- z / sqrt(n p (1 - p)).
    tau = 1 / math.sqrt(400 * 0.8 * 0.2)
    assert narrow["lower_bound"] == pytest.approx(1 / (1 + math.exp(-(math.log(4) - model_card.Z * tau))))


@pytest.mark.parametrize("value", [1e-12, 0.5, 1 - 1e-12])
def test_a_slice_with_one_fraud_gets_an_interval_not_an_overflow(value):
    interval = model_card.pr_auc_interval(value, 1)
    assert 0.0 <= interval["lower_bound"] <= value <= interval["upper_bound"] <= 1.0


def test_no_interval_without_frauds_or_for_a_perfect_score():
    assert model_card.pr_auc_interval(0.7, 0) is None
    assert model_card.pr_auc_interval(1.0, 5) is None
    assert model_card.roc_auc_interval(0.9, 0, 100) is None
