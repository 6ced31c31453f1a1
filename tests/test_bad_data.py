"""Bad input stops at the AnomaliesGate with the data-rejected exit code and names the feature."""

import pytest

import contract
from pipeline import status
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


def _drop_column(header, rows, name):
    at = header.index(name)
    return [c for i, c in enumerate(header) if i != at], [[c for i, c in enumerate(r) if i != at] for r in rows]


def _set_cell(header, rows, name, value, row=10):
    rows = [r[:] for r in rows]
    rows[row][header.index(name)] = value
    return header, rows


CASES = {
    "missing column": ("V3", lambda h, r: _drop_column(h, r, "V3"), "Column dropped"),
    "non-numeric V value": ("V5", lambda h, r: _set_cell(h, r, "V5", "abc"), "STRING"),
    "Class = 2": (contract.LABEL, lambda h, r: _set_cell(h, r, contract.LABEL, "2"), "Out-of-range"),
    "negative Amount": (contract.AMOUNT, lambda h, r: _set_cell(h, r, contract.AMOUNT, "-3.5"), "Out-of-range"),
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


def test_a_malformed_row_fails_the_run_naming_file_and_line(tmp_path):
    rows = read_csv_rows(FIXTURE)[: ROWS + 1]
    rows[5] = rows[5] + ["0.5"]  # one field too many on the 6th line of the file
    data = write_csv_rows(tmp_path / "data" / "malformed.csv", rows)

    run = run_cli(tmp_path / "out", "--data", str(data))

    assert run.returncode == status.EXIT_FAILED, run.stderr[-3000:]
    message = [line for line in run.stderr.splitlines() if line.startswith("fraud-pipeline: ")]
    assert len(message) == 1
    assert "CsvExampleGen" in message[0] and f"{data}, line 6" in message[0]
    assert run.summary["status"] == status.FAILED
    assert run.summary["components"]["CsvExampleGen"]["state"] == "FAILED"
    assert set(executions_per_node(run.metadata_path)) == {"CsvExampleGen"}
    assert "No evaluation" in report_path(run).read_text()
