"""The verdict of a local run or comparison: its status, exit code and one-line message, decided in one place."""

import dataclasses

from components.anomalies_gate import describe
from pipeline import config as cfg
from pipeline import gates as gates_lib
from pipeline import status as st
from pipeline.results.metadata import NodeRun


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: str
    exit_code: int
    message: str


def ok(node: NodeRun | None) -> bool:
    """Did the component finish (now or from the cache)?"""
    return node is not None and node.state in ("COMPLETE", "CACHED")


def stopped(error: BaseException | None, nodes: dict, anomalies: list, required: tuple[str, ...]) -> Verdict | None:
    """The verdict of a run that did not get to its end (data rejected, or failed); None when it did.

    Args:
      error: what the runner raised, if anything.
      nodes: component id -> NodeRun of the run.
      anomalies: what the ExampleValidator found.
      required: the components whose results the run's outcome is read from.
    """
    gate = nodes.get(cfg.GATE)
    if gate is not None and gate.state == "FAILED" and anomalies:
        return Verdict(st.DATA_REJECTED, st.EXIT_DATA_REJECTED, "data rejected: " + describe(anomalies))
    missing = [n for n in required if not ok(nodes.get(n))]
    if error is None and not missing:
        return None
    failed = [n for n, r in nodes.items() if not ok(r)]
    where = f" in {failed[0]}" if failed else ""
    reason = f"{type(error).__name__}: {error}" if error is not None else f"no result from {', '.join(missing)}"
    return Verdict(st.FAILED, st.EXIT_FAILED, f"run failed{where}: {reason}".splitlines()[0])


def run_verdict(error, nodes: dict, anomalies: list, evaluated: dict | None, pushed: str | None) -> Verdict:
    """A `run`: completed when the model was blessed and pushed, not blessed with the failed gates named."""
    early = stopped(error, nodes, anomalies, required=(cfg.EVALUATOR, cfg.PUSHER))
    if early is not None:
        return early
    if not evaluated["blessed"]:
        reasons = "; ".join(gates_lib.describe_failure(f) for f in evaluated["not_blessed_reasons"])
        return Verdict(st.NOT_BLESSED, st.EXIT_NOT_BLESSED, f"model not blessed, nothing pushed: {reasons}")
    if pushed is None:
        return Verdict(st.FAILED, st.EXIT_FAILED, "the model was blessed but the Pusher pushed nothing; see the log")
    return Verdict(st.COMPLETED, st.EXIT_OK, f"model blessed and pushed to {pushed}")


def compare_verdict(error, nodes: dict, anomalies: list, results: dict) -> Verdict:
    """A `compare`: completed when every strategy's Trainer and Evaluator finished."""
    required = tuple(n for s in results for n in cfg.compare_node_ids(s))
    early = stopped(error, nodes, anomalies, required=required)
    if early is not None:
        return early
    blessed = [s for s, r in results.items() if r["would_be_blessed"]]
    best = max(results, key=lambda s: results[s]["test"].get("pr_auc", float("-inf")))
    message = f"best test PR-AUC: {best}; would be blessed: {', '.join(blessed) if blessed else 'none'}"
    return Verdict(st.COMPLETED, st.EXIT_OK, message)
