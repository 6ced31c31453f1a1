"""Data that cannot train a model: the error that says so, and the rules on rows and frauds per split.

Used where the data is read (CsvExampleGen), where it is judged (AnomaliesGate), and by the run's verdict,
so that each rejection reads the same wherever it is told. No TFX or TensorFlow here.
"""

import contract


class DataRejectedError(ValueError):
    """The input cannot be used; the message names the file (or split), the problem and what to do."""


# Fewer frauds than this in a split and the run stops before Transform: the Trainer needs frauds to learn from
# (train), to stop early and choose the operating threshold on (eval), and the Evaluator to measure (test).
DEFAULT_MIN_FRAUDS = {"train": 20, "eval": 5, "test": 5}


_SPANS = {contract.SPAN_NEWEST: "newest", contract.SPAN_PREVIOUS: "previous"}


def count_problems(counts: dict, min_frauds: dict, span_labels: dict | None = None) -> list[str]:
    """What is wrong with the rows and frauds per split, one sentence each; [] when nothing is.

    Args:
      counts: split -> {"rows": n, "frauds": n} (frauds None when the label could not be counted).
      min_frauds: split -> the fewest frauds it must hold.
      span_labels: with input in spans, the newest and the previous span's labels (to name an empty span).
    """
    if counts and all(c["rows"] == 0 for c in counts.values()):
        return ["the input holds no rows (a header alone?)"]
    problems = []
    for split in contract.SPLITS:
        if split not in counts:
            continue
        rows, frauds = counts[split]["rows"], counts[split]["frauds"]
        if rows == 0:
            problems.append(f"the {split} split holds no rows")
        elif frauds is not None and frauds < min_frauds.get(split, 0):
            problems.append(
                f"the {split} split holds {frauds} frauds, fewer than the {min_frauds[split]} it needs "
                f"(--min-{split}-frauds)"
            )
    for split, which in _SPANS.items():
        if split in counts and counts[split]["rows"] == 0:
            label = (span_labels or {}).get(split)
            name = f"span {label}" if label else f"the {which} span"
            problems.append(f"{name} holds no rows (a header alone?)")
    return problems


def describe_counts(problems: list[str]) -> str:
    """The count problems in one line, with what to do about them."""
    short_of_frauds = any("frauds, fewer than" in p for p in problems)
    advice = "give more data (a longer time window), or lower the minimum" if short_of_frauds else "give more data"
    return "; ".join(problems) + ": " + advice


def describe(found: list[dict]) -> str:
    """All anomalies in one line, naming each feature once with the splits it failed in."""
    splits_of: dict[tuple, list[str]] = {}
    for a in found:
        splits_of.setdefault((a["feature"], a["short"], a["description"]), []).append(a["split"])
    parts = []
    for (feature, short, description), splits in splits_of.items():
        where = f"feature '{feature}'" if feature else "dataset"
        parts.append(f"{where} (split {', '.join(splits)}): {short}: {description}")
    return "; ".join(parts)


ACCEPT_DRIFT_ADVICE = "if the change is real and expected, retrain on it knowingly with --accept-drift"


def reasons(
    anomalies: list[dict],
    counts: dict,
    min_frauds: dict,
    drift: list[str] = (),
    accept_drift: bool = False,
    span_labels: dict | None = None,
) -> list[str]:
    """Why the AnomaliesGate stops a run, [] if it does not: the anomalies in one line, the count problems in one,
    then the drift past its thresholds (components.lib.drift.problems) in one, unless the drift was accepted.

    Drift is judged only on data that meets the schema: with anomalies, a missing or mistyped column would also
    be told as a feature that could not be compared, which says nothing more.
    """
    problems = count_problems(counts, min_frauds, span_labels)
    found = ([describe(anomalies)] if anomalies else []) + ([describe_counts(problems)] if problems else [])
    # An empty span cannot be compared: its drift would only repeat that it is empty.
    empty_span = any(split in counts and counts[split]["rows"] == 0 for split in _SPANS)
    if drift and not accept_drift and not anomalies and not empty_span:
        found.append("; ".join(drift) + f": {ACCEPT_DRIFT_ADVICE}")
    return found
