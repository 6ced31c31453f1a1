"""The small pieces the pages and the terminal lines are made of, without a run: numbers tagged with their path in
the run's record and formatted as counts or rates, the comparison's terminal table, the spec files' round trip, and
what a run prints about its pages."""

import math

from pipeline.cli import printing
from pipeline.report import html
from pipeline.results import comparison
from pipeline.runners import finish, spec_io


def test_a_number_carries_its_path_and_is_formatted_as_a_count_or_a_rate():
    summary = {"evaluation": {"overall": {"tp": 41.0, "pr_auc": 0.848253, "roc_auc": float("nan")}}}
    count = html.num(summary, "evaluation", "overall", "tp")
    assert 'data-key="evaluation/overall/tp"' in count and ">41</span>" in count
    assert ">0.8483</span>" in html.num(summary, "evaluation", "overall", "pr_auc")
    assert ">n/a</span>" in html.num(summary, "evaluation", "overall", "roc_auc")
    assert html.esc("<script>") == "&lt;script&gt;"
    assert html.figure("missing", {}) == ""


def test_the_comparison_table_has_a_row_per_strategy_and_says_what_is_missing():
    metrics = {m: 0.5 for m in comparison.TABLE_METRICS}
    result = {
        "strategies": {
            "baseline": {"operating_threshold": {"threshold": 0.25}, "test": metrics, "would_be_blessed": True},
            "oversample": {
                "operating_threshold": {"threshold": 0.75},
                "test": {**metrics, comparison.TABLE_METRICS[0]: math.nan},
                "would_be_blessed": False,
            },
        }
    }
    lines = comparison.table(result).splitlines()
    assert len(lines) == 3 and "strategy" in lines[0]
    assert lines[1].split()[0] == "baseline" and lines[1].split()[1] == "0.2500" and lines[1].split()[-1] == "yes"
    assert "n/a" in lines[2] and lines[2].split()[-1] == "no"


def test_a_spec_reads_back_as_written_in_json_and_yaml(tmp_path):
    spec = {"pipelineSpec": {"root": {"dag": {"tasks": {"a": {"x": [1, 2]}}}}}, "displayName": "p"}
    for name in ("spec.json", "spec.yaml"):
        spec_io.write_spec(spec, str(tmp_path / name))
        assert spec_io.read_spec(str(tmp_path / name)) == spec
    assert spec_io.pipeline_spec(spec) == spec["pipelineSpec"]
    assert spec_io.pipeline_spec(spec["pipelineSpec"]) == spec["pipelineSpec"]


def test_a_run_prints_where_its_pages_went_and_which_could_not_be_written(capsys):
    printing.print_pages(finish.Pages(report="/o/r.html", history="/o/h.html", errors=["the report broke"]))
    out, err = capsys.readouterr()
    assert out.splitlines() == ["report: /o/r.html", "history: /o/h.html"]
    assert err.strip() == "fraud-pipeline: the report broke"
    printing.print_pages(finish.Pages())
    assert capsys.readouterr() == ("", "")
