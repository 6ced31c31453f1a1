"""compare.json: each imbalance strategy's model of a `compare` run, read back, with the comparison's verdict."""

import math

from contract import OutputLayout
from pipeline.definition import config as cfg
from pipeline.definition.config import PipelineConfig
from pipeline.definition.eval_config import COUNTS
from pipeline.results import artifacts
from pipeline.results.evaluation import evaluation_summary
from pipeline.results.summary import Executed, data_rejection, found_anomalies, run_record
from pipeline.results.verdict import Verdict, compare_verdict

TABLE_METRICS = ("pr_auc", "roc_auc", "recall_at_precision", "precision", "recall", "tp", "fp", "fn", "tn")


def _strategy_result(done: Executed, strategy: str, gates) -> dict | None:
    trainer_id, evaluator_id = cfg.compare_node_ids(strategy)
    trainer, evaluator = done.done(trainer_id), done.done(evaluator_id)
    if trainer is None or evaluator is None:
        return None
    facts = artifacts.training(trainer)
    evaluated = evaluation_summary(evaluator, gates)
    return {
        "strategy": strategy,
        "would_be_blessed": evaluated["blessed"],
        "not_blessed_reasons": evaluated["not_blessed_reasons"],
        "operating_threshold": artifacts.operating_threshold(trainer),
        "test": evaluated["overall"],
        "trainer": facts,
        "model_uri": facts["model_uri"],
        "evaluation_uri": evaluated["evaluation_uri"],
    }


def compare_result(
    done: Executed, config: PipelineConfig, layout: OutputLayout, input_path: str, strategies: tuple[str, ...]
) -> tuple[Verdict, dict]:
    """The verdict of a finished comparison and its compare.json content (without the page's figures)."""
    results = {s: _strategy_result(done, s, config.gates) for s in strategies}
    record = run_record(done, config, input_path)
    rejected = data_rejection(done, record, found_anomalies(done), config)
    verdict = compare_verdict(done.error, done.nodes, rejected, results)
    result = {
        **record,
        "status": verdict.status,
        "exit_code": verdict.exit_code,
        "message": verdict.message,
        "threshold_policy": config.threshold_policy.to_dict(),
        "threshold_policy_description": config.threshold_policy.describe(),
        "gates": config.gates.to_dict(),
        "strategies": {s: r for s, r in results.items() if r is not None},
        "output_dir": layout.root,
        "log": layout.log_path,
    }
    return verdict, result


def table(result: dict) -> str:
    """The comparison as a plain-text table for the terminal."""
    head = ["strategy", "threshold"] + list(TABLE_METRICS) + ["blessed?"]
    lines = ["  ".join(f"{h:>12}" for h in head)]
    for strategy, r in result["strategies"].items():
        values = [f"{strategy:>12}", f"{r['operating_threshold']['threshold']:>12.4f}"]
        for m in TABLE_METRICS:
            v = r["test"].get(m)
            if v is None or math.isnan(v):
                values.append(f"{'n/a':>12}")
            elif m in COUNTS:
                values.append(f"{int(v):>12}")
            else:
                values.append(f"{v:>12.4f}")
        values.append(f"{'yes' if r['would_be_blessed'] else 'no':>12}")
        lines.append("  ".join(values))
    return "\n".join(lines)
