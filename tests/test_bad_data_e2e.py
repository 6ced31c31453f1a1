"""Bad input stops before Transform with the data-rejected exit code, naming the file, feature or split."""

import os

import pytest

import contract
from pipeline.definition import status
from tests.support import (
    FIXTURE,
    UPSTREAM_OF_TRAINING,
    executions_per_node,
    read_csv_rows,
    report_path,
    run_cli,
    write_csv_rows,
)

pytestmark = pytest.mark.e2e

ROWS = 300  # enough rows for every split, few enough to keep each run short


def _set_cell(header, rows, name, value, row=10):
    rows = [r[:] for r in rows]
    rows[row][header.index(name)] = value
    return header, rows


# A missing or extra column is refused before the run starts, by the header (tests/test_hostile_input_unit.py).
CASES = {
    "non-numeric V value": ("V5", lambda h, r: _set_cell(h, r, "V5", "abc"), "STRING"),
    "Class = 2": (contract.LABEL, lambda h, r: _set_cell(h, r, contract.LABEL, "2"), "Out-of-range"),
    "negative Amount": (contract.AMOUNT, lambda h, r: _set_cell(h, r, contract.AMOUNT, "-3.5"), "Out-of-range"),
    # Far beyond the schema's ten years of seconds: it would be the newest transaction, in the test split.
    "Time = 1e12": (contract.TIME, lambda h, r: _set_cell(h, r, contract.TIME, "1e12"), "Out-of-range"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_rejected_at_the_gate(case, tmp_path):
    feature, corrupt, anomaly = CASES[case]
    rows = read_csv_rows(FIXTURE)
    header, body = corrupt(rows[0], rows[1 : ROWS + 1])
    data = write_csv_rows(tmp_path / "data" / "bad.csv", [header, *body])

    run = run_cli(tmp_path / "out", "--data", str(data))

    assert run.returncode == status.EXIT_DATA_REJECTED, run.stderr[-3000:]
    message = [line for line in run.stderr.splitlines() if line.startswith("fraud-pipeline: ")]
    assert len(message) == 1, run.stderr[-3000:]
    assert f"feature '{feature}'" in message[0] and anomaly in message[0]
    summary = run.summary
    assert summary["status"] == status.DATA_REJECTED
    assert {a["feature"] for a in summary["anomalies"]} == {feature}
    executions = executions_per_node(run.metadata_path)
    assert executions["AnomaliesGate"] == ["FAILED"]
    # Nothing after the gate ran: only the gate and what feeds it have executions.
    assert {node for node, states in executions.items() if states} <= UPSTREAM_OF_TRAINING
    # The report still tells the story: the splits as read, and what was rejected.
    page = report_path(run).read_text()
    assert "<h2>Data rejected</h2>" in page and f"{feature}: " in page
    assert 'id="fig-class_balance"' in page and "<h2>Training</h2>" not in page


def test_every_anomaly_of_one_file_is_named_in_one_line(tmp_path):
    """One run, several defects: NaN, infinity, an empty cell and text, each named by its feature."""
    header, body = read_csv_rows(FIXTURE)[0], [r[:] for r in read_csv_rows(FIXTURE)[1 : ROWS + 1]]
    for row, (name, value) in enumerate((("V7", "nan"), ("V8", "inf"), ("V9", ""), ("V10", "shop"))):
        body[10 + row][header.index(name)] = value
    data = write_csv_rows(tmp_path / "data" / "defects.csv", [header, *body])

    run = run_cli(tmp_path / "out", "--data", str(data), "--no-report")

    assert run.returncode == status.EXIT_DATA_REJECTED, run.stderr[-3000:]
    message = [line for line in run.stderr.splitlines() if line.startswith("fraud-pipeline: ")]
    assert len(message) == 1
    for feature in ("V7", "V8", "V9", "V10"):
        assert f"feature '{feature}'" in message[0], feature
    assert {a["feature"] for a in run.summary["anomalies"]} == {"V7", "V8", "V9", "V10"}


def _fixture_rows():
    rows = read_csv_rows(FIXTURE)
    return rows[0], rows[1 : ROWS + 1]


def _three_frauds(path):
    header, body = _fixture_rows()
    label = header.index(contract.LABEL)
    frauds = [r for r in body if r[label] == "1"][:3]
    return write_csv_rows(path, [header, *[r for r in body if r[label] == "0"], *frauds])


def _malformed_row(path):
    header, body = _fixture_rows()
    body = [r[:] for r in body]
    body[4] = body[4] + ["0.5"]  # one field too many on the 6th line of the file
    return write_csv_rows(path, [header, *body])


# name -> (how to write the file, words the one-line message holds, the components that ran). An empty file, a
# header alone and a truncated gzip file are refused before the run starts (tests/test_hostile_input_unit.py).
UNUSABLE = {
    "three frauds": (_three_frauds, "frauds, fewer than the", UPSTREAM_OF_TRAINING),
    "malformed row": (_malformed_row, "line 6: 32 fields where the header has 31", {"CsvExampleGen"}),
}


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_data_that_cannot_train_a_model_is_rejected_before_transform(case, tmp_path):
    write, words, ran = UNUSABLE[case]
    (tmp_path / "data").mkdir()
    data = write(tmp_path / "data" / "input.csv")

    run = run_cli(tmp_path / "out", "--data", str(data))

    assert run.returncode == status.EXIT_DATA_REJECTED, run.stderr[-3000:]
    message = [line for line in run.stderr.splitlines() if line.startswith("fraud-pipeline: ")]
    assert len(message) == 1, run.stderr[-3000:]
    assert message[0].startswith(f"fraud-pipeline: data rejected: {data}") and words in message[0], message[0]
    assert run.summary["status"] == status.DATA_REJECTED
    executions = executions_per_node(run.metadata_path)
    assert {node for node, states in executions.items() if states} == ran
    assert "FAILED" in executions["AnomaliesGate" if "AnomaliesGate" in ran else "CsvExampleGen"]
    if case == "three frauds":
        # The counts are in the message, with the flag that sets the minimum.
        assert "--min-train-frauds" in message[0] or "--min-eval-frauds" in message[0]
    assert "No evaluation" in report_path(run).read_text()


def test_an_empty_newest_span_is_named_as_a_span_not_as_drift(tmp_path):
    """Spans 0001 and 0002 hold the fixture's rows, span 0003 only a header: the gate names the span."""
    header, body = read_csv_rows(FIXTURE)[0], read_csv_rows(FIXTURE)[1:]
    half = len(body) // 2
    spans = tmp_path / "spans"
    write_csv_rows(spans / "span-0001.csv", [header, *body[:half]])
    write_csv_rows(spans / "span-0002.csv", [header, *body[half:]])
    write_csv_rows(spans / "span-0003.csv", [header])

    run = run_cli(tmp_path / "out", "--data", str(spans), "--no-report")

    assert run.returncode == status.EXIT_DATA_REJECTED, run.stderr[-3000:]
    message = [line for line in run.stderr.splitlines() if line.startswith("fraud-pipeline: ")]
    assert message == [
        f"fraud-pipeline: data rejected: {spans}: span 0003 holds no rows (a header alone?): give more data"
    ]
    assert run.summary["input"]["spans"]["newest"] == "0003"
    assert executions_per_node(run.metadata_path)["AnomaliesGate"] == ["FAILED"]
    assert not (tmp_path / "out" / "serving").exists() or not os.listdir(tmp_path / "out" / "serving")
