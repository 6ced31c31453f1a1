"""The run report: one self-contained HTML file (figures embedded as PNG data) plus the PNG files.

A little over the size of a module: one page, each of its sections a function of its own.

Everything comes from the run's own artifacts: summary.json (itself read from ML Metadata, StatisticsGen and
the Evaluator's TFMA result), the training history saved with the model, and the model's serving signature run
over the raw splits ExampleGen wrote. Every number shown that comes from summary.json carries its path there in a
data-key attribute, so tests (and curious users) can check the page against the run.
"""

import json
import os

import contract
from datasets import spec as dataset_spec
from datasets.spec import DatasetSpec
from pipeline.report import figures as figs
from pipeline.report.html import CSS, at, esc, figure, num
from pipeline.scoring import curves as curves_lib

REPORT_FILE = "report.html"
FIGURES = (
    "class_balance",
    "training_history",
    "confusion_matrix",
    "roc",
    "precision_recall",
    "threshold",
    "slices",
    "feature_distributions",
    "drift",
)


_GATE_LABELS = {"pr_auc": "PR-AUC", "recall_at_precision": "recall at precision {at_precision}"}


def _gate_rows(summary: dict) -> str:
    """One row per gate; pass/fail is TFMA's own outcome (evaluation.gate_results), not recomputed here."""
    evaluation = summary["evaluation"]
    rows = []
    for gate in evaluation["gate_results"]:
        metric, result = gate["metric"], gate["result"]
        label = esc(_GATE_LABELS[metric].format(**evaluation["gates"]))
        value = num(summary, "evaluation", "overall", metric)
        threshold = num(summary, "evaluation", "gates", gate["gate"])
        if gate["kind"] == "value":
            name, cells = f"{label} &ge; floor", f"<td>{value}</td><td>{threshold}</td><td>&mdash;</td>"
        elif result == "not applied":
            name = f"{label}: drop vs serving model &le; {threshold}"
            cells = "<td colspan='3'>no baseline (first run): not applied</td>"
        else:
            name = f"{label}: drop vs serving model &le; {threshold}"
            before = num(summary, "evaluation", "baseline", "overall", metric)
            cells = f"<td>{value}</td><td>&mdash;</td><td>{before}</td>"
        css = result if result in ("pass", "fail") else ""
        rows.append(f"<tr><td>{name}</td>{cells}<td class='{css}' data-gate='{gate['gate']}'>{result}</td></tr>")
    return "".join(rows)


def _verdict_section(summary: dict) -> str:
    evaluation = summary["evaluation"]
    if evaluation is None:
        return f"<p>No evaluation: {esc(summary['message'])}</p>"
    blessed = summary["blessed"]
    parts = [
        f"<p><span class='verdict {'pass' if blessed else 'fail'}' id='verdict'>"
        f"{'BLESSED and pushed' if blessed and summary['pushed_model'] else 'NOT BLESSED: nothing pushed'}"
        "</span></p>",
        f"<p>{esc(summary['message'])}</p>",
        f"<p class='muted'>Baseline: {esc(summary['baseline'])}</p>",
        "<table><tr><th>gate (test split, overall)</th><th>value</th><th>floor</th><th>serving model</th>"
        f"<th>result</th></tr>{_gate_rows(summary)}</table>",
    ]
    if summary["not_blessed_reasons"]:
        items = "".join(f"<li>{esc(r['message'] or r['metric'])}</li>" for r in summary["not_blessed_reasons"])
        parts.append(f"<p>The Evaluator's reasons:</p><ul>{items}</ul>")
    return "".join(parts)


def _threshold_section(summary: dict, images: dict) -> str:
    op = summary.get("operating_threshold")
    if op is None:
        return "<p>No model was trained in this run.</p>"
    met = op["target_met"]
    warning = (
        "<p class='fail'>No threshold reached the precision target on the eval split (with the policy's confidence); "
        "the one with the highest lower bound on its precision is used.</p>"
        if met is False
        else ""
    )
    rows = []
    for split in ("eval", "test"):
        if split not in op:
            continue
        cells = "".join(f"<td>{num(summary, 'operating_threshold', split, k)}</td>" for k in ("precision", "recall"))
        counts = "".join(f"<td>{num(summary, 'operating_threshold', split, k)}</td>" for k in ("tp", "fp", "fn", "tn"))
        rows.append(f"<tr><td>{split}</td>{cells}{counts}</tr>")
    cost = (
        f"<p>Expected cost on eval at this threshold: {num(summary, 'operating_threshold', 'eval', 'expected_cost')}"
        "</p>"
        if "expected_cost" in op["eval"]
        else ""
    )
    if op.get("alerts"):
        cost += (
            f"<p>Alert budget: {num(summary, 'operating_threshold', 'alerts', 'per_day_budget')} a day. On eval "
            f"({num(summary, 'operating_threshold', 'alerts', 'eval_days')} days) the threshold flags "
            f"{num(summary, 'operating_threshold', 'alerts', 'eval_alerts')} transactions, "
            f"{num(summary, 'operating_threshold', 'alerts', 'eval_alerts_per_day')} a day; their precision "
            f"{num(summary, 'operating_threshold', 'alerts', 'precision_at_budget')}.</p>"
        )
    if op.get("eval_precision_lower_bound") is not None:
        cost += (
            "<p>Lower bound of the eval precision at this threshold (Wilson score interval, "
            f"z = {op['policy']['confidence_z']:g}): "
            f"{num(summary, 'operating_threshold', 'eval_precision_lower_bound')}</p>"
        )
    return (
        f"<p>Operating threshold <b>{num(summary, 'operating_threshold', 'threshold')}</b>, chosen on the eval split "
        f"({esc(op['policy_description'])}), never on test. The model carries it: "
        "<code>assets.extra/operating_threshold.json</code> next to the SavedModel, and the serving signature returns "
        "<code>decision</code> (probability &ge; threshold) alongside <code>probability</code>. A flagged "
        "transaction is one the model would send to review.</p>"
        f"{warning}<table><tr><th>split</th><th>precision</th><th>recall</th><th>TP</th><th>FP</th><th>FN</th>"
        f"<th>TN</th></tr>{''.join(rows)}</table>{cost}"
        + figure(
            "threshold",
            images,
            "Precision and recall on the eval split for every threshold. Eval is where the threshold is chosen; the "
            "test split above shows how it holds on later, unseen transactions.",
        )
    )


def _confusion_section(summary: dict, images: dict) -> str:
    if summary["evaluation"] is None:
        return "<p>No evaluation in this run.</p>"
    o = ("evaluation", "overall")
    total = int(summary["evaluation"]["overall"]["tp"] + summary["evaluation"]["overall"]["fn"])
    return (
        figure(
            "confusion_matrix",
            images,
            "Rows: the truth; columns: the model's decision at its operating threshold. Colour: the share of each row.",
        )
        + "<ul class='counts'>"
        f"<li>Legitimate Transactions Detected (True Negatives): {num(summary, *o, 'tn')}</li>"
        f"<li>Legitimate Transactions Incorrectly Detected (False Positives): {num(summary, *o, 'fp')}</li>"
        f"<li>Fraudulent Transactions Missed (False Negatives): {num(summary, *o, 'fn')}</li>"
        f"<li>Fraudulent Transactions Detected (True Positives): {num(summary, *o, 'tp')}</li>"
        f"<li>Total Fraudulent Transactions: {total:,}</li></ul>"
        f"<p>Precision {num(summary, *o, 'precision')}, recall {num(summary, *o, 'recall')} "
        "(TFMA, test split, at the operating threshold).</p>"
    )


def _metrics_table(summary: dict) -> str:
    if summary["evaluation"] is None:
        return ""
    names = ("example_count", "pr_auc", "roc_auc", "recall_at_precision", "precision", "recall", "tp", "fp", "fn", "tn")
    head = "".join(f"<th>{n}</th>" for n in names)
    rows = [("overall", ("evaluation", "overall"))] + [
        (name, ("evaluation", "slices", name)) for name in summary["evaluation"]["slices"]
    ]
    body = []
    for label, path in rows:
        values = at(summary, path)
        cells = "".join(f"<td>{num(summary, *path, n)}</td>" if n in values else "<td>n/a</td>" for n in names)
        body.append(f"<tr><td>{esc(label)}</td>{cells}</tr>")
    return f"<table id='metrics'><tr><th>slice</th>{head}</tr>{''.join(body)}</table>"


def _drift_section(summary: dict, images: dict) -> str:
    """The DistributionValidator's comparisons: the verdict, a figure and a table of every feature."""
    found = summary.get("drift")
    if not found:
        return "<p>Not measured: the run stopped before the DistributionValidator.</p>"
    if not found["exceeded"]:
        verdict = "<p><span class='verdict pass' id='drift-verdict'>within thresholds</span></p>"
    elif found["accepted"]:
        verdict = (
            "<p><span class='verdict fail' id='drift-verdict'>past thresholds, accepted (--accept-drift)</span></p>"
            f"<p>{esc('; '.join(found['exceeded']))}</p>"
        )
    else:
        verdict = (
            "<p><span class='verdict fail' id='drift-verdict'>past thresholds: the run stopped before Transform"
            f"</span></p><p>{esc('; '.join(found['exceeded']))}</p>"
        )
    parts = [
        verdict,
        "<p class='muted'>Thresholds: the dataset spec's drift section. Numeric features: Jensen-Shannon divergence "
        "of quantile histograms; the label: L-infinity distance.</p>",
        figure("drift", images, "Each comparison this run made, every compared feature."),
    ]
    for i, comparison in enumerate(found["comparisons"]):
        note = f"<p class='muted'>{esc(comparison['note'])}</p>" if comparison.get("note") else ""
        rows = []
        for j, f in enumerate(comparison["features"]):
            path = ("drift", "comparisons", i, "features", j)
            value = num(summary, *path, "value") if f["value"] is not None else "not compared"
            threshold = num(summary, *path, "threshold") if f["threshold"] is not None else "&mdash;"
            result = "fail" if f["exceeded"] else "pass"
            rows.append(
                f"<tr><td>{esc(f['feature'])}</td><td>{esc(f['measure'])}</td><td>{value}</td><td>{threshold}</td>"
                f"<td class='{result}'>{'past' if f['exceeded'] else 'within'}</td></tr>"
            )
        parts.append(
            f"<h3>{esc(comparison['name'])}</h3>{note}<table class='drift'><tr><th>feature</th><th>measure</th>"
            f"<th>value</th><th>threshold</th><th>result</th></tr>{''.join(rows)}</table>"
        )
    return "".join(parts)


def _spans_note(summary: dict) -> str:
    spans = summary["input"].get("spans")
    if not spans:
        return ""
    previous = esc(spans["previous"]) if spans["previous"] else "none yet"
    return (
        f" Spans (<code>{esc(spans['pattern'])}</code>): trained on {esc(', '.join(spans['window']))}; newest "
        f"{esc(spans['newest'])}, previous {previous}."
    )


def _splits_table(summary: dict) -> str:
    rows = "".join(
        f"<tr><td>{split}</td><td>{num(summary, 'splits', split, 'rows')}</td>"
        f"<td>{num(summary, 'splits', split, 'frauds')}</td>"
        f"<td>{100 * (c['frauds'] or 0) / max(c['rows'], 1):.3f}%</td></tr>"
        for split, c in sorted(summary["splits"].items(), key=lambda kv: contract.SPLITS.index(kv[0]))
    )
    return f"<table><tr><th>split</th><th>rows</th><th>frauds</th><th>fraud rate</th></tr>{rows}</table>"


def _model_note(hparams: dict | None, tuning: dict | None) -> str:
    """The network trained, and with --tune each trial the Tuner ran (best first)."""
    if not hparams:
        return ""
    note = (
        f"<p>Model: {esc(hparams['layers'])} hidden layer(s) of {esc(hparams['units'])} units, dropout "
        f"{esc(hparams['dropout'])}, learning rate {esc(hparams['learning_rate'])}"
        + (f", {esc(hparams['ensemble'])} members averaged" if hparams.get("ensemble", 1) > 1 else "")
        + ".</p>"
    )
    if not tuning:
        return note
    names = list(tuning["best"])
    head = "".join(f"<th>{esc(n)}</th>" for n in ["trial", *names, "best eval PR-AUC"])
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(t.get(n))}</td>" for n in ["trial_id", *names]) + f"<td>{t['score']:.4f}</td></tr>"
        for t in sorted(tuning["trials"], key=lambda t: -t["score"])
    )
    return (
        note
        + f"<p>Chosen by the Tuner's search ({len(tuning['trials'])} trials):</p><table><tr>{head}</tr>{rows}</table>"
    )


def _training_section(summary: dict, trainer: dict, images: dict) -> str:
    weights = trainer.get("class_weight")
    weights = ", ".join(f"{k}: {v:.3f}" for k, v in weights.items()) if weights else None
    return (
        _model_note(trainer.get("hparams"), summary.get("tuning"))
        + f"<p>Initial output bias {num(summary, 'trainer', 'initial_bias')} (log of frauds/normal in train); "
        f"class weights {esc(weights) if weights else 'none'}; {num(summary, 'trainer', 'epochs_run')} epochs, "
        f"best epoch {num(summary, 'trainer', 'best_epoch')} with validation PR-AUC "
        f"{num(summary, 'trainer', 'best_val_prc')}.</p>"
        + figure(
            "training_history",
            images,
            "Keras metrics per epoch; precision and recall here are at Keras' fixed 0.5, not the operating "
            "threshold. Class weights and oversampling move the scores, so compare strategies on PR-AUC.",
        )
    )


def _curves_section(images: dict, computed: dict) -> str:
    return (
        figure(
            "roc",
            images,
            "Train and test splits, every distinct score a threshold. Normal transactions vastly outnumber "
            "frauds, so the log-scale view on the right shows the region that matters: few false positives.",
        )
        + figure("precision_recall", images, "")
        + "<p class='muted'>Areas computed exactly from the scores: "
        + ", ".join(f"{split} ROC-AUC {c['roc_auc']:.4f}, AP {c['ap']:.4f}" for split, c in computed["curves"].items())
        + ". The Evaluator's table values (TFMA) use 10,000 thresholds, so they can differ in the last digits."
        "</p>"
    )


def _dataset_note(summary: dict) -> str:
    """The dataset the run trained on, and how its spec differs from the serving version's (when it does)."""
    dataset = summary.get("dataset") or {}
    out = f"<p class='muted'>Dataset: <b>{esc(dataset.get('name', contract.DEFAULT_DATASET.name))}</b>.</p>"
    changed = summary.get("dataset_changes")
    if changed:
        items = "".join(f"<li>{esc(c)}</li>" for c in changed["changes"])
        out += (
            f"<p>The dataset spec differs from the one serving version {esc(changed['serving_version'])} was trained "
            f"by ({esc(changed['serving_dataset'])}):</p><ul>{items}</ul>"
        )
    return out


def render(summary: dict, images: dict, computed: dict, history_link: str | None = None) -> str:
    """The HTML page of a run from its summary, the base64 PNGs and the numbers computed from the scores.

    history_link: the output folder's history page, relative to the report (none when it has no output folder).
    """
    trainer = summary.get("trainer") or {}
    split_note = {
        "time": "by time: train on the oldest 64%, eval on the next 16%, test on the newest 20%",
        "random": "random (hash) 64/16/20",
    }.get(summary["input"]["split"], summary["input"]["split"])
    sections = [
        f"<h1>Fraud pipeline run report</h1><p class='muted'>Run {esc(summary.get('run_id'))}, "
        f"{esc(summary['started_at'])} &ndash; {esc(summary['finished_at'])}. Data: "
        f"<code>{esc(summary['input']['path'])}</code>, split {esc(split_note)}.{_spans_note(summary)} Strategy "
        f"<b>{esc(summary['hparams']['strategy'])}</b>. Status: <b>{esc(summary['status'])}</b>.</p>"
        + (
            f"<p><a href='{esc(history_link)}'>History of this output folder</a>: every run, trends, rollbacks.</p>"
            if history_link
            else ""
        ),
        _dataset_note(summary),
        "<h2>Blessing verdict</h2>" + _verdict_section(summary),
        "<h2>The data: class imbalance</h2>" + _splits_table(summary) + figure("class_balance", images, ""),
    ]
    sections.append("<h2>Drift and skew</h2>" + _drift_section(summary, images))
    if summary.get("anomalies"):
        items = "".join(
            f"<li>{esc(a.get('split'))}: {esc(a.get('feature'))}: {esc(a.get('description'))}</li>"
            for a in summary["anomalies"]
        )
        sections.append(f"<h2>Data rejected</h2><ul>{items}</ul>")
    if trainer:
        sections.append("<h2>Training</h2>" + _training_section(summary, trainer, images))
    sections.append("<h2>Operating threshold</h2>" + _threshold_section(summary, images))
    sections.append("<h2>Confusion matrix (test split)</h2>" + _confusion_section(summary, images))
    if "roc" in images:
        sections.append("<h2>ROC and precision&ndash;recall curves</h2>" + _curves_section(images, computed))
    if summary["evaluation"] is not None:
        sections.append(
            "<h2>Test metrics per slice</h2>"
            + _metrics_table(summary)
            + figure("slices", images, "A slice holds few frauds, so its numbers are noisy; gates use the overall.")
        )
    if "feature_distributions" in images:
        sections.append(
            "<h2>Frauds versus normal transactions</h2>"
            + figure(
                "feature_distributions",
                images,
                f"The numeric features that separate the classes most on this run's train split "
                f"({', '.join(computed['separating_features'])})"
                + "".join(f", and log({name})" for name in computed.get("logged_features", []))
                + ".",
            )
        )
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Fraud pipeline report {esc(summary.get('run_id'))}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def dataset_of_summary(summary: dict) -> DatasetSpec:
    """The dataset spec a run's summary records (the default one for a summary from before specs)."""
    recorded = (summary.get("dataset") or {}).get("spec")
    return dataset_spec.parse(recorded, "the run's summary") if recorded else contract.DEFAULT_DATASET


def build(summary: dict, out_dir: str) -> str:
    """Writes report.html, the PNGs and report.json (what was computed here) into out_dir; returns the HTML path."""
    os.makedirs(out_dir, exist_ok=True)
    images: dict[str, str] = {}
    computed: dict = {"curves": {}, "separating_features": [], "operating_points": {}}
    dataset = dataset_of_summary(summary)
    if summary["splits"]:
        images["class_balance"] = figs.save_png(figs.class_balance_figure(summary), out_dir, "class_balance")
    if summary.get("drift") and summary["drift"]["comparisons"]:
        drift = figs.drift_figure(summary["drift"]["comparisons"], dataset.columns)
        images["drift"] = figs.save_png(drift, out_dir, "drift")
    trainer = summary.get("trainer")
    if trainer:
        with open(trainer["history_path"]) as f:
            history = json.load(f)["history"]
        images["training_history"] = figs.save_png(
            figs.history_figure(history, trainer["best_epoch"]), out_dir, "training_history"
        )
    evaluation = summary.get("evaluation")
    op = summary.get("operating_threshold")
    if evaluation is not None and op is not None:
        images["confusion_matrix"] = figs.save_png(
            figs.confusion_figure(evaluation["overall"], op["threshold"]), out_dir, "confusion_matrix"
        )
        images["slices"] = figs.save_png(figs.slices_figure(evaluation["slices"]), out_dir, "slices")
    artifacts = summary.get("artifacts", {})
    if op is not None and "model" in artifacts and "examples" in artifacts:
        from pipeline.scoring import splits as scoring  # TensorFlow: only when there is a model to run.

        _, serve = scoring.load_model(artifacts["model"])
        scored = {s: scoring.score_split(artifacts["examples"], s, serve, dataset) for s in contract.SPLITS}
        shown = {s: scored[s] for s in ("train", "test")}
        curve_by_split = {s: curves_lib.curves(v.labels, v.probability) for s, v in shown.items()}
        points = curves_lib.operating_points(shown, op["threshold"])
        prevalence = {s: float(v.labels.mean()) for s, v in shown.items()}
        roc = figs.roc_figure(curve_by_split, points, figs.SPLIT_COLORS, "ROC curves (dots: the operating threshold)")
        images["roc"] = figs.save_png(roc, out_dir, "roc")
        pr = figs.pr_figure(
            curve_by_split,
            points,
            figs.SPLIT_COLORS,
            "Precision-recall curves (dots: operating threshold; dotted: fraud rate)",
            prevalence,
        )
        images["precision_recall"] = figs.save_png(pr, out_dir, "precision_recall")
        images["threshold"] = figs.save_png(figs.threshold_figure(scored["eval"], op), out_dir, "threshold")
        plain = [f.name for f in dataset.numeric if f.transform == "zscore"]
        logged = [(f.name, f.log_offset) for f in dataset.numeric if f.transform == "log_zscore"]
        names = curves_lib.separating_features(scored["train"].columns, scored["train"].labels, candidates=plain)
        images["feature_distributions"] = figs.save_png(
            figs.features_figure(scored["train"], names, logged), out_dir, "feature_distributions"
        )
        computed = {
            "curves": {s: {"roc_auc": c["roc_auc"], "ap": c["ap"]} for s, c in curve_by_split.items()},
            "separating_features": names,
            "logged_features": [name for name, _ in logged],
            "operating_points": points,
        }
    history = os.path.join(summary["output_dir"], "history", "history.html") if summary.get("output_dir") else None
    page = render(summary, images, computed, os.path.relpath(history, out_dir) if history else None)
    path = os.path.join(out_dir, REPORT_FILE)
    with open(path, "w") as f:
        f.write(page)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump({"run_id": summary.get("run_id"), "figures": sorted(images), **computed}, f, indent=2)
    return path
