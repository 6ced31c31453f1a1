"""What the commands print on the terminal: a run's result, its drift and skew, where its report went."""

import sys

from components.lib import drift
from pipeline.definition import gates as gates_lib
from pipeline.definition import status as st


def say(line: str) -> None:
    """A progress line on stderr (stdout holds the results)."""
    print(f"[fraud-pipeline] {line}", file=sys.stderr, flush=True)


def print_drift(summary: dict) -> None:
    spans_read = summary["input"].get("spans")
    if spans_read:
        previous = spans_read["previous"] or "none yet"
        print(f"spans: {', '.join(spans_read['window'])} (newest {spans_read['newest']}, previous {previous})")
    found = summary.get("drift")
    if not found:
        return
    largest = []
    for comparison in found["comparisons"]:
        top = drift.largest(comparison["features"])
        if top:
            largest.append(
                f"{comparison['name']}: largest {top['feature']} {top['value']:.3f} (threshold {top['threshold']:g})"
            )
    print(f"drift and skew: {st.drift_verdict(summary)}; " + "; ".join(largest))
    if found["accepted"]:
        print("  past its thresholds and accepted with --accept-drift: " + "; ".join(found["exceeded"]))


def print_run(summary: dict) -> None:
    for split, counts in summary["splits"].items():
        print(f"{split:>5}: {counts['rows']} rows, {counts['frauds']} frauds")
    print_drift(summary)
    print(f"status: {summary['status']}")
    if summary.get("tuning"):
        best = ", ".join(f"{k} {v}" for k, v in summary["tuning"]["best"].items())
        scores = [t["score"] for t in summary["tuning"]["trials"]]
        print(f"tuned ({len(scores)} trials, best eval PR-AUC {max(scores):.4f}): {best}")
    if summary["evaluation"] is None:
        return
    overall = summary["evaluation"]["overall"]
    ranked = sorted(m for m in overall if m.startswith("card_precision_at_"))
    shown = ", ".join(
        f"{m} {overall[m]:.4f}" for m in ("pr_auc", "roc_auc", "recall_at_precision", *ranked) if m in overall
    )
    print(f"test metrics: {shown}")
    op = summary["operating_threshold"]
    if op is not None:
        at = "; ".join(
            f"{split} precision {op[split]['precision']:.4f}, recall {op[split]['recall']:.4f}"
            for split in ("eval", "test")
            if split in op
        )
        print(f"operating threshold {op['threshold']:.4f} ({op['policy_description']}): {at}")
        alerts = op.get("alerts")
        if alerts:
            precision = alerts["precision_at_budget"]
            print(
                f"  alert budget {alerts['per_day_budget']:g} a day: {alerts['eval_alerts']} eval alerts over "
                f"{alerts['eval_days']:.2f} days ({alerts['eval_alerts_per_day']:.1f} a day), precision "
                + (f"{precision:.4f}" if precision is not None else "- (nothing flagged)")
            )
        if op["target_met"] is False and op["policy"]["kind"] == "alerts":
            print("  even the highest threshold flags more than the budget allows; nothing is flagged")
        elif op["target_met"] is False:
            print("  the precision target was not reached on eval; the most precise threshold is used")
    print(summary["baseline"])
    if summary["blessed"] and summary.get("rolled_back_version"):
        print(f"blessed: yes; not pushed: this same model was rolled back (version {summary['rolled_back_version']})")
    elif summary["blessed"] and summary.get("already_serving"):
        print(f"blessed: yes; the same model is serving already: {summary['pushed_model']} (nothing pushed again)")
    elif summary["blessed"]:
        print(f"blessed: yes; pushed to {summary['pushed_model']}")
    else:
        print("blessed: no; nothing pushed")
        for failure in summary["not_blessed_reasons"]:
            print(f"  - {gates_lib.describe_failure(failure)}")


def print_pages(pages) -> None:
    """Where a run's report and the history page went (runners/finish.py), and any page that could not be written
    (the run's result stands)."""
    for error in pages.errors:
        print(f"fraud-pipeline: {error}", file=sys.stderr)
    if pages.report:
        print(f"report: {pages.report}")
    if pages.history:
        print(f"history: {pages.history}")
