"""summary.json: what a local run did, read from its ML Metadata and artifacts, with its verdict."""

import dataclasses
import datetime
import json
import os

import contract
from components.lib import drift, serving
from contract import OutputLayout
from pipeline.definition import config as cfg
from pipeline.definition import faults, metadata
from pipeline.definition import status as st
from pipeline.definition.config import PipelineConfig
from pipeline.results import artifacts
from pipeline.results.evaluation import evaluation_summary
from pipeline.results.metadata import NodeRun
from pipeline.results.verdict import Verdict, ok, rejection, run_verdict
from trainer.hparams import ThresholdPolicy


@dataclasses.dataclass
class Executed:
    """A finished LocalDagRunner run: the error it raised (if any) and each component's execution."""

    error: BaseException | None
    nodes: dict[str, NodeRun]
    run_id: str | None
    seconds: dict
    started: datetime.datetime
    peak_rss_mb: dict = dataclasses.field(default_factory=dict)

    def done(self, node_id: str) -> NodeRun | None:
        """The component's execution when it finished (now or from the cache), else None."""
        node = self.nodes.get(node_id)
        return node if ok(node) else None


def run_record(done: Executed, config: PipelineConfig, input_path: str) -> dict:
    """What every run's JSON record starts with: the run, its input and splits, and each component's state."""
    statistics, example_gen = done.done(cfg.STATISTICS_GEN), done.done(cfg.EXAMPLE_GEN)
    counts = artifacts.split_counts(statistics, config.dataset.label) if statistics else {}
    spans = artifacts.spans_read(example_gen) if example_gen else None
    if spans is not None:
        spans["window_size"] = config.window or None
        spans["newest_counts"], spans["previous_counts"] = (counts.get(s) for s in contract.DRIFT_PAIR)
    return {
        "run_id": done.run_id,
        "input": {"path": input_path, "split": config.split, "spans": spans},
        "dataset": {"name": config.dataset.name, "digest": config.dataset.digest(), "spec": config.dataset.to_dict()},
        # Where the Beam components ran: the --beam-arg values, with what the CLI added for remote workers.
        "beam_args": list(config.beam_pipeline_args),
        "splits": {s: c for s, c in counts.items() if s in contract.SPLITS},
        "drift": drift_record(done, config, spans),
        "data_minimums": config.data_minimums.to_dict(),
        "hparams": config.hparams.to_dict(),
        "tune_trials": config.tune_trials,
        "code_versions": dict(config.code_versions),
        "components": {
            n: {"state": r.state, "seconds": done.seconds.get(n), "peak_rss_mb": done.peak_rss_mb.get(n)}
            for n, r in done.nodes.items()
        },
        "started_at": done.started.isoformat(timespec="seconds"),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def found_anomalies(done: Executed) -> list[dict]:
    """What the ExampleValidator found (its output exists even when the gate after it failed)."""
    validator = done.done(cfg.EXAMPLE_VALIDATOR)
    return artifacts.anomalies(validator) if validator else []


def drift_record(done: Executed, config: PipelineConfig, spans: dict | None) -> dict | None:
    """What the DistributionValidator measured, per comparison, and whether drift past a threshold was accepted."""
    validator = done.done(cfg.DISTRIBUTION_VALIDATOR)
    if validator is None:
        return None
    comparisons = artifacts.drift_comparisons(validator)
    for comparison in comparisons:
        if tuple(comparison["pair"]) == contract.DRIFT_PAIR and spans is not None:
            if spans["previous"] is None:
                comparison["note"] = f"no span before {spans['newest']} yet: the newest span was compared with itself"
            else:
                comparison["name"] = f"newest span {spans['newest']} vs previous span {spans['previous']}"
    problems = drift.problems(comparisons)
    return {
        "comparisons": comparisons,
        "exceeded": problems,
        "accept_drift": config.accept_drift,
        # Drift past a threshold that this run went on with, by --accept-drift.
        "accepted": bool(problems) and config.accept_drift,
    }


def data_rejection(done: Executed, record: dict, anomalies: list, config: PipelineConfig) -> str | None:
    """Why the run's data was rejected (anomalies, rows and frauds per split, drift, or unreadable input), or None."""
    minimums = config.data_minimums.per_split()
    drifted = record["drift"]["exceeded"] if record.get("drift") else []
    spans = record["input"].get("spans")
    labels = {contract.SPAN_NEWEST: spans["newest"], contract.SPAN_PREVIOUS: spans["previous"]} if spans else None
    counts = {**record["splits"], **_span_counts(spans)}
    return rejection(
        done.error,
        done.nodes,
        record["input"]["path"],
        anomalies,
        counts,
        minimums,
        drifted,
        config.accept_drift,
        labels,
    )


def _span_counts(spans: dict | None) -> dict:
    """The newest and previous span's rows and frauds (the splits the drift check compares)."""
    if not spans:
        return {}
    return {
        split: counts
        for split, counts in (
            (contract.SPAN_NEWEST, spans.get("newest_counts")),
            (contract.SPAN_PREVIOUS, spans.get("previous_counts")),
        )
        if counts
    }


def _baseline_note(evaluated: dict | None) -> str | None:
    if evaluated is None:
        return None
    if evaluated["baseline"] is None:
        return "no other model serving to compare with (as on a first run): only the value thresholds applied"
    baseline = evaluated["baseline"]
    return f"compared with the model serving: version {baseline['serving_version']} ({baseline['serving_path']})"


def _operating_threshold(trainer: NodeRun | None, evaluated: dict | None) -> dict | None:
    """The model's operating threshold, what it did on eval (where it was chosen) and on test (TFMA)."""
    if trainer is None:
        return None
    chosen = artifacts.operating_threshold(trainer)
    chosen["policy_description"] = ThresholdPolicy.from_dict(chosen["policy"]).describe()
    if evaluated is not None:
        overall = evaluated["overall"]
        chosen["test"] = {k: overall.get(k) for k in ("tp", "fp", "tn", "fn", "precision", "recall")}
    return chosen


def _artifacts(done: Executed) -> dict:
    """The URIs of the run's main artifacts (what the report reads)."""
    wanted = {
        "examples": (cfg.EXAMPLE_GEN, "examples"),
        "statistics": (cfg.STATISTICS_GEN, "statistics"),
        "transform_graph": (cfg.TRANSFORM, "transform_graph"),
        "model": (cfg.TRAINER, "model"),
        "evaluation": (cfg.EVALUATOR, "evaluation"),
    }
    return {
        name: done.nodes[node].output_uri(key)
        for name, (node, key) in wanted.items()
        if done.done(node) and done.nodes[node].outputs.get(key)
    }


def run_summary(done: Executed, config: PipelineConfig, layout: OutputLayout, input_path: str) -> tuple[Verdict, dict]:
    """The verdict of a finished `run` and its summary.json content."""
    found = found_anomalies(done)
    record = run_record(done, config, input_path)
    evaluator, pusher, trainer = done.done(cfg.EVALUATOR), done.done(cfg.PUSHER), done.done(cfg.TRAINER)
    tuner = done.done(cfg.TUNER)
    evaluated = evaluation_summary(evaluator, config.gates) if evaluator else None
    pushed = artifacts.pushed_model(pusher) if pusher else None
    again = bool(pusher) and artifacts.already_serving(pusher)
    refused = artifacts.rolled_back_version(pusher) if pusher else None
    rejected = data_rejection(done, record, found, config)
    verdict = _environment(
        run_verdict(done.error, done.nodes, rejected, evaluated, pushed, again, refused), done, layout
    )
    summary = {
        **record,
        "status": verdict.status,
        "exit_code": verdict.exit_code,
        "message": verdict.message,
        "anomalies": found,
        "tuning": artifacts.tuning(tuner) if tuner else None,
        "trainer": artifacts.training(trainer) if trainer else None,
        "operating_threshold": _operating_threshold(trainer, evaluated),
        "evaluation": evaluated,
        "blessed": bool(evaluated and evaluated["blessed"]),
        "not_blessed_reasons": evaluated["not_blessed_reasons"] if evaluated else [],
        "baseline": _baseline_note(evaluated),
        "pushed_model": pushed,
        # The blessed model was the one serving already (same data, code and settings): nothing was copied.
        "already_serving": again,
        # The blessed model was one a rollback took out of serving (that version): it was not pushed again.
        "rolled_back_version": refused,
        "serving_dir": config.serving_dir,
        "artifacts": _artifacts(done),
        "output_dir": layout.root,
        "pipeline_root": layout.pipeline_root,
        "metadata": config.metadata_path or layout.metadata_path,
        "log": layout.log_path,
    }
    return verdict, summary


def _environment(verdict: Verdict, done: Executed, layout: OutputLayout) -> Verdict:
    """A failure caused by the machine (a full disk, a broken ML Metadata store) told as such (exit code 7)."""
    if verdict.exit_code != st.EXIT_FAILED:
        return verdict
    failed = next((n for n, r in done.nodes.items() if r.state not in ("COMPLETE", "CACHED")), None)
    where = f" while {failed} ran" if failed else ""
    if faults.no_space(done.error):
        return Verdict(
            st.FAILED,
            st.EXIT_ENVIRONMENT,
            f"no space left on the disk of {layout.root}{where}: free some space and run the same command again "
            "(what finished is reused from the cache; what was half-written is not)",
        )
    shared = metadata.shared()
    if shared is not None and faults.lost_server(done.error):
        return Verdict(st.FAILED, st.EXIT_ENVIRONMENT, faults.lost_server_sentence(str(shared), where))
    if faults.broken_store(done.error):
        return Verdict(
            st.FAILED, st.EXIT_ENVIRONMENT, faults.broken_store_sentence(layout.metadata_path, layout.pipeline_root)
        )
    tampered = _unverified(done.error)
    if tampered is not None:
        return Verdict(st.FAILED, st.EXIT_ENVIRONMENT, f"{tampered}{where}")
    return verdict


def _unverified(error: BaseException | None) -> str | None:
    """The message of a pushed version that failed its manifest (components.lib.serving.verify), behind the runner's
    error (TFX may wrap it), if that is what stopped the run."""
    while error is not None:
        if isinstance(error, serving.UnverifiedVersionError):
            return str(error)
        error = error.__cause__ or error.__context__
    return None


def write(path: str, summary: dict) -> None:
    """Writes a JSON record atomically so readers never see half a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
