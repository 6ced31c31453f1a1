"""`fraud-pipeline compare`: the imbalance strategies trained on the same splits, side by side.

One pipeline runs ingest, validation and Transform once, then a Trainer and an Evaluator per strategy (see
create_compare_pipeline). Nothing is pushed. The result is DIR/compare.json and DIR/compare/compare.html with the
ROC and precision-recall curves of the test split overlaid, a metrics table and which model would be blessed.
"""

import dataclasses
import html
import math
import os
from collections.abc import Callable

from components.anomalies_gate import describe
from pipeline import report as report_lib
from pipeline import status as st
from pipeline import summary as summary_lib
from pipeline.config import OutputLayout, PipelineConfig
from pipeline.local_runner import GATE_ID, _ok, _say, execute, logs_to_file, run_record
from pipeline.pipeline import compare_node_ids, create_compare_pipeline

COMPARE_FILE = "compare.html"
STRATEGY_COLORS = {"baseline": "#8c8c8c", "class_weight": "#4c72b0", "oversample": "#dd5144"}
TABLE_METRICS = ("pr_auc", "roc_auc", "recall_at_precision", "precision", "recall", "tp", "fp", "fn", "tn")


@dataclasses.dataclass
class CompareResult:
    status: str
    exit_code: int
    message: str
    result: dict
    html_path: str | None


def _strategy_result(nodes: dict, strategy: str, gates) -> dict | None:
    trainer_id, evaluator_id = compare_node_ids(strategy)
    if not (_ok(nodes.get(trainer_id)) and _ok(nodes.get(evaluator_id))):
        return None
    trainer = summary_lib.training(nodes[trainer_id])
    evaluated = summary_lib.evaluation_summary(nodes[evaluator_id], gates)
    return {
        "strategy": strategy,
        "would_be_blessed": evaluated["blessed"],
        "not_blessed_reasons": evaluated["not_blessed_reasons"],
        "operating_threshold": summary_lib.operating_threshold(nodes[trainer_id]),
        "test": evaluated["overall"],
        "trainer": trainer,
        "model_uri": trainer["model_uri"],
        "evaluation_uri": evaluated["evaluation_uri"],
    }


def _figures(results: dict, examples_uri: str, out_dir: str) -> tuple[dict, dict]:
    """ROC and precision-recall curves of every strategy's model on the test split, overlaid."""
    from pipeline import predictions

    scored = {}
    for strategy, r in results.items():
        _, serve = predictions.load_model(r["model_uri"])
        scored[strategy] = predictions.score_split(examples_uri, "test", serve)
    curves = {s: report_lib.curves(v.labels, v.probability) for s, v in scored.items()}
    thresholds = {s: r["operating_threshold"]["threshold"] for s, r in results.items()}
    points = report_lib.operating_points(scored, thresholds)
    roc = report_lib.roc_figure(
        curves, points, STRATEGY_COLORS, "Test split ROC per strategy (dots: each model's operating threshold)"
    )
    pr = report_lib.pr_figure(curves, points, STRATEGY_COLORS, "Test split precision-recall per strategy")
    images = {
        "roc": report_lib.save_png(roc, out_dir, "roc"),
        "precision_recall": report_lib.save_png(pr, out_dir, "precision_recall"),
    }
    exact = {s: {"roc_auc": c["roc_auc"], "ap": c["ap"]} for s, c in curves.items()}
    return images, exact


def _render(result: dict, images: dict) -> str:
    esc = html.escape
    head = "".join(f"<th>{m}</th>" for m in TABLE_METRICS)
    rows = []
    for strategy, r in result["strategies"].items():
        cells = "".join(
            f"<td>{report_lib.num(result, 'strategies', strategy, 'test', m)}</td>"
            if m in r["test"]
            else "<td>n/a</td>"
            for m in TABLE_METRICS
        )
        verdict = "yes" if r["would_be_blessed"] else "no"
        rows.append(
            f"<tr><td>{esc(strategy)}</td><td>{report_lib.num(result, 'strategies', strategy, 'trainer', 'best_epoch')}"
            f"</td><td>{report_lib.num(result, 'strategies', strategy, 'operating_threshold', 'threshold')}</td>"
            f"{cells}<td class='{'pass' if r['would_be_blessed'] else 'fail'}'>{verdict}</td></tr>"
        )
    gates = result["gates"]
    figures = "".join(
        f'<figure id="fig-{name}"><img alt="{name}" src="data:image/png;base64,{data}"></figure>'
        for name, data in images.items()
    )
    exact = ", ".join(
        f"{s} ROC-AUC {c['roc_auc']:.4f}, AP {c['ap']:.4f}" for s, c in result.get("exact_curves", {}).items()
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Strategy comparison</title>"
        f"<style>{report_lib.CSS}</style></head><body>"
        "<h1>Imbalance strategies compared</h1>"
        f"<p class='muted'>Run {esc(str(result['run_id']))}. Data <code>{esc(result['input']['path'])}</code>, split "
        f"{esc(result['input']['split'])}. Same splits and Transform for every strategy; each model chose its "
        "operating threshold on the eval split with the same policy "
        f"({esc(result['threshold_policy_description'])}); all numbers below are on the test split (TFMA).</p>"
        f"<table id='comparison'><tr><th>strategy</th><th>best epoch</th><th>threshold</th>{head}"
        f"<th>would be blessed</th></tr>{''.join(rows)}</table>"
        f"<p class='muted'>Would be blessed: passes the value gates (PR-AUC &ge; {gates['min_pr_auc']}, recall at "
        f"precision {gates['at_precision']} &ge; {gates['min_recall_at_precision']}). The comparison with the latest "
        "blessed model is not part of this check.</p>"
        f"{figures}<p class='muted'>Areas computed exactly from the scores: {esc(exact)}.</p></body></html>\n"
    )


def compare(
    config: PipelineConfig,
    layout: OutputLayout,
    input_path: str,
    strategies: tuple[str, ...],
    say: Callable[[str], None] = _say,
) -> CompareResult:
    """Runs the comparison pipeline locally and writes compare.json and the HTML page."""
    done = execute(create_compare_pipeline(config, strategies), config, layout, say)
    with logs_to_file(layout):
        return _record(done, config, layout, input_path, strategies)


def _record(done, config: PipelineConfig, layout: OutputLayout, input_path: str, strategies) -> CompareResult:
    """Reads each strategy's results, writes compare.json and, when all finished, the comparison page."""
    nodes = done.nodes
    results = {s: _strategy_result(nodes, s, config.gates) for s in strategies}
    missing = [s for s, r in results.items() if r is None]
    gate = nodes.get(GATE_ID)
    if gate is not None and gate.state == "FAILED":
        found = summary_lib.anomalies(nodes["ExampleValidator"])
        status, code, message = st.DATA_REJECTED, st.EXIT_DATA_REJECTED, "data rejected: " + describe(found)
    elif done.error is not None or missing:
        failed = [n for n, r in nodes.items() if not _ok(r)]
        where = f" in {failed[0]}" if failed else ""
        reason = f"{type(done.error).__name__}: {done.error}" if done.error else f"no result for {', '.join(missing)}"
        status, code, message = st.FAILED, st.EXIT_FAILED, f"comparison failed{where}: {reason}".splitlines()[0]
    else:
        blessed = [s for s, r in results.items() if r["would_be_blessed"]]
        best = max(results, key=lambda s: results[s]["test"].get("pr_auc", float("-inf")))
        status, code = st.COMPLETED, st.EXIT_OK
        message = (
            f"best test PR-AUC: {best}; would be blessed: {', '.join(blessed) if blessed else 'none'}"
            if results
            else "nothing compared"
        )
    result = {
        **run_record(done, config, input_path),
        "status": status,
        "exit_code": code,
        "message": message,
        "threshold_policy": config.threshold_policy.to_dict(),
        "threshold_policy_description": config.threshold_policy.describe(),
        "gates": config.gates.to_dict(),
        "strategies": {s: r for s, r in results.items() if r is not None},
        "output_dir": layout.root,
        "log": layout.log_path,
    }
    html_path = None
    if code == st.EXIT_OK:
        out_dir = os.path.join(layout.root, "compare")
        os.makedirs(out_dir, exist_ok=True)
        examples = nodes["CsvExampleGen"].output_uri("examples")
        images, result["exact_curves"] = _figures(result["strategies"], examples, out_dir)
        html_path = os.path.join(out_dir, COMPARE_FILE)
        with open(html_path, "w") as f:
            f.write(_render(result, images))
        result["html"] = html_path
    summary_lib.write(os.path.join(layout.root, "compare.json"), result)
    return CompareResult(status=status, exit_code=code, message=message, result=result, html_path=html_path)


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
            elif m in report_lib.COUNT_KEYS:
                values.append(f"{int(v):>12}")
            else:
                values.append(f"{v:>12.4f}")
        values.append(f"{'yes' if r['would_be_blessed'] else 'no':>12}")
        lines.append("  ".join(values))
    return "\n".join(lines)
