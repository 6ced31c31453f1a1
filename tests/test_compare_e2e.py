"""`fraud-pipeline compare`: three strategies trained after one shared ingest and Transform, side by side."""

import re

import pytest

from pipeline.definition.config import compare_node_ids
from tests.support import FIGURE, NUMBER, at, executions_per_node
from trainer.hparams import STRATEGIES

pytestmark = pytest.mark.e2e

METRICS = {"pr_auc", "roc_auc", "recall_at_precision", "precision", "recall", "tp", "fp", "tn", "fn"}


def test_compare_yields_the_three_strategies_metrics(compare_run):
    result = compare_run["result"]
    assert result["status"] == "completed"
    assert list(result["strategies"]) == list(STRATEGIES)
    test_rows = result["splits"]["test"]["rows"]
    for strategy, r in result["strategies"].items():
        assert METRICS <= set(r["test"]), strategy
        assert r["test"]["tp"] + r["test"]["fp"] + r["test"]["tn"] + r["test"]["fn"] == test_rows
        assert r["trainer"]["hparams"]["strategy"] == strategy
        assert r["operating_threshold"]["policy"]["kind"] == "precision"
        assert isinstance(r["would_be_blessed"], bool)
        assert r["would_be_blessed"] == (not r["not_blessed_reasons"])
    # Three different models: different training, different scores.
    assert len({r["model_uri"] for r in result["strategies"].values()}) == 3
    assert len({r["test"]["pr_auc"] for r in result["strategies"].values()}) > 1
    # The terminal table has a row per strategy.
    out = compare_run["proc"].stdout
    for strategy in STRATEGIES:
        assert re.search(rf"^\s*{strategy}\s+\d\.\d{{4}}", out, re.M), out


def test_the_upstream_work_is_shared(compare_run):
    executions = executions_per_node(str(compare_run["output"] / "metadata.sqlite"))
    for node in ("CsvExampleGen", "StatisticsGen", "Transform"):
        assert executions[node] == ["COMPLETE"], node
    for strategy in STRATEGIES:
        trainer, evaluator = compare_node_ids(strategy)
        assert executions[trainer] == ["COMPLETE"] and executions[evaluator] == ["COMPLETE"]
    assert "Pusher" not in executions and not (compare_run["output"] / "serving").exists()


def test_the_comparison_page_overlays_the_curves_and_shows_the_numbers(compare_run):
    result = compare_run["result"]
    page = (compare_run["output"] / "compare" / "compare.html").read_text()
    assert set(dict(FIGURE.findall(page))) == {"roc", "precision_recall"}
    for name in ("roc", "precision_recall"):
        assert (compare_run["output"] / "compare" / f"{name}.png").stat().st_size > 5000
    shown = NUMBER.findall(page)
    for strategy in STRATEGIES:
        assert f"strategies/{strategy}/test/pr_auc" in {k for k, _ in shown}
    for key, value in shown:
        assert float(value) == at(result, key), key
