"""Spans without running the pipeline: the pattern conventions, the window, what --data means, the replay's cut."""

import gzip

import pytest

from components.lib import spans
from pipeline import cli
from pipeline.cli import data as cli_data
from pipeline.runners import replay
from tests.support import FIXTURE, read_csv_rows


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Time,Class\n0,0\n")
    return path


def test_spans_are_found_by_number_and_ordered_oldest_first():
    base = "/d"
    paths = [f"{base}/span-{n}/part-{p}.csv.gz" for n in ("0010", "0002", "0009") for p in (0, 1)]
    paths += [f"{base}/notes/readme.csv", f"{base}/span-x/part-0.csv.gz"]
    found = spans.find(base, "span-{SPAN}/*.csv.gz", paths)
    assert [s.number for s in found] == [2, 9, 10]
    assert [s.label for s in found] == ["0002", "0009", "0010"]
    assert found[0].files == ("/d/span-0002/part-0.csv.gz", "/d/span-0002/part-1.csv.gz")


def test_dated_spans_are_numbered_by_day_as_in_tfx():
    found = spans.find("gs://b/d", "{YYYY}-{MM}-{DD}.csv", ["gs://b/d/2013-09-02.csv", "gs://b/d/2013-08-31.csv"])
    assert [s.label for s in found] == ["2013-08-31", "2013-09-02"]
    assert found[1].number - found[0].number == 2
    with pytest.raises(spans.SpanPatternError, match="not a date"):
        spans.find("/d", "{YYYY}-{MM}-{DD}.csv", ["/d/2013-02-30.csv"])


def test_two_spans_with_one_number_are_refused():
    with pytest.raises(spans.SpanPatternError, match="same number"):
        spans.find("/d", "span-{SPAN}.csv", ["/d/span-7.csv", "/d/span-007.csv"])


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [("{SPAN}/{YYYY}-{MM}-{DD}.csv", "not both"), ("{YYYY}-{MM}.csv", "together"), ("{SPAN}/{SPAN}.csv", "more than")],
)
def test_unusable_patterns_are_refused(pattern, problem):
    with pytest.raises(spans.SpanPatternError, match=problem):
        spans.check(pattern)


def test_the_window_takes_exactly_the_newest_spans():
    found = [spans.Span(n, str(n), (f"/d/{n}.csv",)) for n in (1, 2, 3, 4)]
    assert [s.number for s in spans.newest(found, 2)] == [3, 4]
    assert spans.newest(found, 0) == found
    assert spans.newest(found, 9) == found
    with pytest.raises(ValueError):
        spans.newest(found, -1)


def test_the_glob_of_a_pattern_matches_every_span():
    assert spans.glob_of("span-{SPAN}/*.csv.gz") == "span-*/*.csv.gz"
    assert spans.glob_of("{YYYY}{MM}{DD}.csv") == "***.csv"


def test_data_in_span_folders_is_detected(tmp_path):
    for n in (1, 2):
        _touch(tmp_path / f"span-000{n}" / "part-0.csv.gz")
    assert cli_data.data_input(str(tmp_path)) == cli_data.DataInput(
        str(tmp_path), "span-*/*.csv*", "span-{SPAN}/*.csv*"
    )


def test_data_in_dated_files_is_detected(tmp_path):
    _touch(tmp_path / "2013-09-01.csv.gz")
    _touch(tmp_path / "2013-09-02.csv.gz")
    assert cli_data.data_input(str(tmp_path)).span_pattern == "{YYYY}-{MM}-{DD}.csv*"


def test_a_flat_folder_and_a_file_are_read_whole_as_before(tmp_path):
    _touch(tmp_path / "january.csv")
    _touch(tmp_path / "span-0001.csv")  # one file without a span name: not a folder of spans
    assert cli_data.data_input(str(tmp_path)) == cli_data.DataInput(str(tmp_path), "*.csv*", "")
    assert cli_data.data_input(str(tmp_path / "january.csv")) == cli_data.DataInput(str(tmp_path), "january.csv", "")


def test_an_explicit_pattern_gives_its_folder_and_spans(tmp_path):
    _touch(tmp_path / "feed" / "day7" / "a.csv")
    data = cli_data.data_input(str(tmp_path / "feed" / "day{SPAN}" / "*.csv"))
    assert data == cli_data.DataInput(str(tmp_path / "feed"), "day*/*.csv", "day{SPAN}/*.csv")
    remote = cli_data.data_input("gs://bucket/feed/span-{SPAN}/*.csv.gz")
    assert remote == cli_data.DataInput("gs://bucket/feed", "span-*/*.csv.gz", "span-{SPAN}/*.csv.gz")
    with pytest.raises(cli.UsageError, match="no such folder"):
        cli_data.data_input(str(tmp_path / "nowhere" / "span-{SPAN}" / "*.csv"))


def test_window_without_spans_is_a_usage_error(capsys):
    code = cli.main(["run", "--data", str(FIXTURE), "--window", "2", "--output", "/tmp/never-written"])
    assert code == 2
    assert "--window 2" in capsys.readouterr().err


def test_the_replay_cuts_a_file_into_time_ordered_spans_of_equal_size(tmp_path):
    header, parts = replay.cut(str(FIXTURE), 3)
    rows = read_csv_rows(FIXTURE)
    assert header.strip() == ",".join(rows[0])
    assert [len(p) for p in parts] == [317, 317, 317]
    times = [t for part in parts for t, _ in part]
    assert times == sorted(times)
    written = replay.write_span(tmp_path, 2, header, parts[1])
    assert written.label == "0002" and written.path.endswith("span-0002/part-0.csv.gz")
    with gzip.open(written.path, "rt") as f:
        lines = f.read().splitlines()
    assert len(lines) == 318
    label = rows[0].index("Class")
    assert written.frauds == sum(1 for line in lines[1:] if line.split(",")[label] in ("1", "1.0")) > 0
