"""The comparison page: test ROC and precision-recall curves of every compared model (an imbalance strategy or a
model option), and a table."""

import html
import itertools
import os

from components.lib import serving
from pipeline.report import figures as figs
from pipeline.report.html import CSS, num
from pipeline.results.comparison import TABLE_METRICS
from pipeline.scoring import curves as curves_lib

COMPARE_FILE = "compare.html"
STRATEGY_COLORS = {"baseline": "#8c8c8c", "class_weight": "#4c72b0", "oversample": "#dd5144"}
# For the model options, in the order they are compared.
MORE_COLORS = ("#55a868", "#8172b2", "#ccb974", "#64b5cd", "#c44e52", "#937860")


def colors(names) -> dict:
    """A color per compared candidate: the strategies keep theirs, the others take the next of MORE_COLORS."""
    others = itertools.cycle(MORE_COLORS)
    return {n: STRATEGY_COLORS[n] if n in STRATEGY_COLORS else next(others) for n in names}


def _figures(results: dict, examples_uri: str, out_dir: str) -> tuple[dict, dict]:
    """ROC and precision-recall curves of every strategy's model on the test split, overlaid."""
    from pipeline.scoring import splits as scoring  # TensorFlow: only once there are models to run.

    scored = {}
    for strategy, r in results.items():
        _, serve = scoring.load_model(r["model_uri"])
        # The columns read back are those of the dataset spec the model carries.
        spec = serving.dataset_of_model(r["model_uri"])
        scored[strategy] = scoring.score_split(examples_uri, "test", serve, spec)
    curves = {s: curves_lib.curves(v.labels, v.probability) for s, v in scored.items()}
    thresholds = {s: r["operating_threshold"]["threshold"] for s, r in results.items()}
    points = curves_lib.operating_points(scored, thresholds)
    palette = colors(list(results))
    roc = figs.roc_figure(curves, points, palette, "Test split ROC per model (dots: each model's operating threshold)")
    pr = figs.pr_figure(curves, points, palette, "Test split precision-recall per model")
    images = {
        "roc": figs.save_png(roc, out_dir, "roc"),
        "precision_recall": figs.save_png(pr, out_dir, "precision_recall"),
    }
    exact = {s: {"roc_auc": c["roc_auc"], "ap": c["ap"]} for s, c in curves.items()}
    return images, exact


def _render(result: dict, images: dict) -> str:
    esc = html.escape
    head = "".join(f"<th>{m}</th>" for m in TABLE_METRICS)
    rows = []
    for strategy, r in result["strategies"].items():
        cells = "".join(
            f"<td>{num(result, 'strategies', strategy, 'test', m)}</td>" if m in r["test"] else "<td>n/a</td>"
            for m in TABLE_METRICS
        )
        verdict = "yes" if r["would_be_blessed"] else "no"
        rows.append(
            f"<tr><td>{esc(strategy)}</td><td>{num(result, 'strategies', strategy, 'trainer', 'best_epoch')}"
            f"</td><td>{num(result, 'strategies', strategy, 'operating_threshold', 'threshold')}</td>"
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
        f"<style>{CSS}</style></head><body>"
        f"<h1>{'Imbalance strategies' if set(result['strategies']) <= set(STRATEGY_COLORS) else 'Models'} compared</h1>"
        f"<p class='muted'>Run {esc(str(result['run_id']))}. Data <code>{esc(result['input']['path'])}</code>, split "
        f"{esc(result['input']['split'])}. Same splits and Transform for every model; each model chose its "
        "operating threshold on the eval split with the same policy "
        f"({esc(result['threshold_policy_description'])}); all numbers below are on the test split (TFMA).</p>"
        f"<table id='comparison'><tr><th>strategy</th><th>best epoch</th><th>threshold</th>{head}"
        f"<th>would be blessed</th></tr>{''.join(rows)}</table>"
        f"<p class='muted'>Would be blessed: passes the value gates (PR-AUC &ge; {gates['min_pr_auc']}, recall at "
        f"precision {gates['at_precision']} &ge; {gates['min_recall_at_precision']}). The comparison with the latest "
        "blessed model is not part of this check.</p>"
        f"{figures}<p class='muted'>Areas computed exactly from the scores: {esc(exact)}.</p></body></html>\n"
    )


def build(result: dict, examples_uri: str, out_dir: str) -> str:
    """Writes compare.html and its PNGs into out_dir (and the exact curve areas into result); returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    images, result["exact_curves"] = _figures(result["strategies"], examples_uri, out_dir)
    path = os.path.join(out_dir, COMPARE_FILE)
    with open(path, "w") as f:
        f.write(_render(result, images))
    return path
