"""The history windows of a dataset spec (datasets.spec.History), computed: one definition for both sides.

Training (components/example_gen/history.py) gives `windows` an entity's whole history sorted by time; serving
(pipeline/online_store) asks its database for the same three sums of each window (`Partials`: the earlier rows, their
value's sum, their frauds) and finishes them with `finish`, so both sides turn the same partial sums into features by
the same code. What each window covers:

- without a delay, (t - w, t): the entity's rows strictly earlier than the row and later than t - w, and the row
  itself (its value counted, its label not: it is not known yet);
- with a delay d, (t - d - w, t - d]: the rows whose labels are known by t, the row itself not among them.

A row's time and value are taken as the examples store them (`stored`: float32 for a float, whole seconds for an
ISO time), on both sides, so a boundary falls on the same row. NumPy only.
"""

import dataclasses

import numpy as np

from datasets.spec import History


def stored(value: float | int | None, is_float: bool) -> float:
    """A time or value as a tf.Example holds it (float32 when the column is a float), as a Python float; NaN for
    None."""
    if value is None:
        return float("nan")
    return float(np.float32(value)) if is_float else float(value)


@dataclasses.dataclass
class Partials:
    """Of one window for each of n rows: the earlier rows it holds, the sum of their values, their frauds."""

    count: np.ndarray
    total: np.ndarray
    frauds: np.ndarray


def bounds(item: History, time: float, window: int) -> tuple[float, float, bool]:
    """(low, high, high included) of a row's window: its rows have low < time < high, or <= high when included."""
    if item.delay_seconds:
        end = time - item.delay_seconds
        return end - window, end, True
    return time - window, time, False


def windows(item: History, times: np.ndarray, values: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The history features of every row of one entity: times sorted ascending (float64), values and labels (0/1)
    beside them. Feature name -> an array of one value a row."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    frauds = np.concatenate([[0], np.cumsum(np.asarray(labels, dtype=np.int64))])
    partials = {}
    for name, window in zip(item.windows, item.window_seconds):
        if item.delay_seconds:
            end = times - item.delay_seconds
            low = np.searchsorted(times, end - window, side="right")
            high = np.searchsorted(times, end, side="right")
        else:
            low = np.searchsorted(times, times - window, side="right")
            high = np.searchsorted(times, times, side="left")
        partials[name] = Partials(high - low, sums[high] - sums[low], frauds[high] - frauds[low])
    return finish(item, partials, values)


def finish(item: History, partials: dict[str, Partials], values: np.ndarray) -> dict[str, np.ndarray]:
    """Each feature of the entry from its windows' partial sums and the rows' own values."""
    values = np.asarray(values, dtype=np.float64)
    own = 0 if item.delay_seconds else 1  # without a delay the row is in its own windows
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, aggregate, window in item.features:
            p = partials[window]
            count = np.asarray(p.count, dtype=np.float64) + own
            total = np.asarray(p.total, dtype=np.float64) + (values if own else 0.0)
            if aggregate == "count":
                result = count
            elif aggregate == "sum":
                result = total
            elif aggregate == "mean":
                result = np.where(count > 0, total / count, item.empty)
            elif aggregate == "ratio_to_mean":
                mean = total / count
                result = np.where((count > 0) & (mean != 0), values / mean, item.empty)
            else:  # fraud_rate: only labelled rows are in a delayed window
                frauds = np.asarray(p.frauds, dtype=np.float64)
                rows = np.asarray(p.count, dtype=np.float64)
                result = np.where(rows > 0, frauds / rows, item.empty)
            out[name] = np.asarray(result, dtype=np.float64)
    return out


def finish_row(item: History, partials: dict[str, tuple], value: float) -> dict[str, float]:
    """`finish` for one row in Python floats (what a scorer serving one row calls: numpy's overhead on arrays of one
    row is most of the work; docs/benchmarks.md, "The history features' lookup at serving"): partials are (rows,
    sum, frauds) by window. The same float64 operations in the
    same order, so the values are `finish`'s to the last bit (tests/test_history_windows_unit.py)."""
    own = 0 if item.delay_seconds else 1
    out = {}
    for name, aggregate, window in item.features:
        rows, total, frauds = partials[window]
        count = float(rows) + own
        total = float(total) + (value if own else 0.0)
        if aggregate == "count":
            result = count
        elif aggregate == "sum":
            result = total
        elif aggregate == "mean":
            result = total / count if count > 0 else item.empty
        elif aggregate == "ratio_to_mean":
            mean = total / count if count > 0 else float("nan")
            result = value / mean if count > 0 and mean != 0 else item.empty
        else:  # fraud_rate
            result = float(frauds) / float(rows) if rows > 0 else item.empty
        out[name] = float(result)
    return out


def missing(item: History) -> dict[str, float]:
    """The features of a row whose entity (or time) is missing: counts and sums 0, the rest `empty`."""
    return {name: 0.0 if aggregate in ("count", "sum") else item.empty for name, aggregate, _ in item.features}
