"""The verdict of a local run or comparison: its status, exit code and one-line message, decided in one place."""

import dataclasses

from components.lib.rejection import DataRejectedError, reasons
from pipeline.definition import config as cfg
from pipeline.definition import gates as gates_lib
from pipeline.definition import status as st
from pipeline.results.metadata import NodeRun


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: str
    exit_code: int
    message: str


def ok(node: NodeRun | None) -> bool:
    """Did the component finish (now or from the cache)?"""
    return node is not None and node.state in ("COMPLETE", "CACHED")


def _data_rejected_error(error: BaseException | None) -> DataRejectedError | None:
    """The DataRejectedError behind a runner's error (Beam and TFX may wrap it), if any."""
    while error is not None:
        if isinstance(error, DataRejectedError):
            return error
        error = error.__cause__ or error.__context__
    return None


def rejection(
    error,
    nodes: dict,
    input_path: str,
    anomalies: list,
    counts: dict,
    minimums: dict,
    drift: list[str] = (),
    accept_drift: bool = False,
    span_labels: dict | None = None,
) -> str | None:
    """Why the data was rejected, in one line that starts with the input, or None when it was not.

    The gate's reasons are recomputed from the validator's anomalies, StatisticsGen's counts and the drift past
    its thresholds (components.lib.drift.problems) with the gate's own rules, so they read the same as the gate's
    error; a rejection where the data is read (CsvExampleGen) comes from its error, which names the file and line.
    """
    gate = nodes.get(cfg.GATE)
    if gate is not None and gate.state == "FAILED":
        found = reasons(anomalies, counts, minimums, drift, accept_drift, span_labels)
        if found:
            return f"{input_path}: " + "; ".join(found)
    rejected = _data_rejected_error(error)
    if rejected is not None:
        # Beam appends where it was running; the message already says where in the data.
        return str(rejected).splitlines()[0].split(" [while running")[0].removeprefix("data rejected: ")
    return None


def stopped(
    error: BaseException | None, nodes: dict, rejected: str | None, required: tuple[str, ...]
) -> Verdict | None:
    """The verdict of a run that did not get to its end (data rejected, or failed); None when it did.

    Args:
      error: what the runner raised, if anything.
      nodes: component id -> NodeRun of the run.
      rejected: why the data was rejected (see rejection), or None.
      required: the components whose results the run's outcome is read from.
    """
    if rejected is not None:
        return Verdict(st.DATA_REJECTED, st.EXIT_DATA_REJECTED, "data rejected: " + rejected)
    missing = [n for n in required if not ok(nodes.get(n))]
    if error is None and not missing:
        return None
    failed = [n for n, r in nodes.items() if not ok(r)]
    where = f" in {failed[0]}" if failed else ""
    reason = f"{type(error).__name__}: {error}" if error is not None else f"no result from {', '.join(missing)}"
    return Verdict(st.FAILED, st.EXIT_FAILED, f"run failed{where}: {reason}".splitlines()[0])


def run_verdict(
    error,
    nodes: dict,
    rejected: str | None,
    evaluated: dict | None,
    pushed: str | None,
    already_serving: bool = False,
    rolled_back: int | None = None,
) -> Verdict:
    """A `run`: completed when the model was blessed and pushed (or is the one serving already), not blessed with
    the failed gates named."""
    early = stopped(error, nodes, rejected, required=(cfg.EVALUATOR, cfg.PUSHER))
    if early is not None:
        return early
    if not evaluated["blessed"]:
        reasons = "; ".join(gates_lib.describe_failure(f) for f in evaluated["not_blessed_reasons"])
        return Verdict(st.NOT_BLESSED, st.EXIT_NOT_BLESSED, f"model not blessed, nothing pushed: {reasons}")
    if rolled_back is not None:
        return Verdict(
            st.NOT_BLESSED,
            st.EXIT_NOT_BLESSED,
            f"model blessed but not pushed: this same model was rolled back (version {rolled_back}); retrain on other "
            "data or settings",
        )
    if pushed is None:
        return Verdict(st.FAILED, st.EXIT_FAILED, "the model was blessed but the Pusher pushed nothing; see the log")
    if already_serving:
        return Verdict(st.COMPLETED, st.EXIT_OK, f"model blessed; it is the model serving already, {pushed}")
    return Verdict(st.COMPLETED, st.EXIT_OK, f"model blessed and pushed to {pushed}")


def compare_verdict(error, nodes: dict, rejected: str | None, results: dict) -> Verdict:
    """A `compare`: completed when every strategy's Trainer and Evaluator finished."""
    required = tuple(n for s in results for n in cfg.compare_node_ids(s))
    early = stopped(error, nodes, rejected, required=required)
    if early is not None:
        return early
    blessed = [s for s, r in results.items() if r["would_be_blessed"]]
    best = max(results, key=lambda s: results[s]["test"].get("pr_auc", float("-inf")))
    message = f"best test PR-AUC: {best}; would be blessed: {', '.join(blessed) if blessed else 'none'}"
    return Verdict(st.COMPLETED, st.EXIT_OK, message)
