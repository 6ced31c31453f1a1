"""The outcomes page: how the models serving did once the labels arrived, per day, with trend figures and the join."""

import html
import os

import contract
from pipeline.report import figures as figs
from pipeline.report.html import CSS, figure, num

OUTCOMES_FILE = "outcomes.html"
_METRICS = (("precision", "precision at the threshold"), ("recall", "recall at the threshold"), ("pr_auc", "PR-AUC"))


def _day(group: dict) -> str:
    """A day as the page shows it: its date where the dataset's times are dates, else its index."""
    return group.get("date") or str(group["day"])


def _trend_figure(groups: list[dict]):
    fig, (left, right) = figs.plt.subplots(1, 2, figsize=(11, 3.6))
    versions = sorted({g["model_version"] for g in groups}, key=contract.version_order)
    for version in versions:
        rows = [g for g in groups if g["model_version"] == version]
        days = [g["day"] for g in rows]
        for metric, label in _METRICS:
            values = [g[metric] if g[metric] is not None else float("nan") for g in rows]
            left.plot(days, values, marker="o", label=f"{label} (v{version})" if len(versions) > 1 else label)
    left.set_ylim(0, 1.02)
    left.set_xlabel("day of Time")
    left.set_title("Realized performance per day")
    left.legend(fontsize=7)
    days = [f"{_day(g)}·v{g['model_version']}" if len(versions) > 1 else _day(g) for g in groups]
    caught = [g["fraud_amount_caught"] for g in groups]
    missed = [g["fraud_amount_missed"] for g in groups]
    right.bar(days, caught, color=figs.FRAUD_COLOR, label="fraud amount caught")
    right.bar(days, missed, bottom=caught, color="#bbbbbb", label="fraud amount missed")
    right.set_title("Fraud amount per day")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def build(record: dict, out_dir: str) -> str:
    """Writes OUT_DIR/outcomes.html (self-contained) and its figure; returns the page's path."""
    os.makedirs(out_dir, exist_ok=True)
    images = {}
    if record["groups"]:
        images["trend"] = figs.save_png(_trend_figure(record["groups"]), out_dir, "trend")
    # A spec with an entity adds its card precision@k (components/lib/card_precision.py).
    ranked = sorted({m for g in record["groups"] for m in g if m.startswith("card_precision_at_")})
    header = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in ("day", "model", "rows", "labelled", "alerts", "precision", "recall", "PR-AUC", "precision at budget",
                  *(f"card precision@{m.rsplit('_', 1)[1]}" for m in ranked), "amount caught", "amount missed")
    )  # fmt: skip
    rows = []
    for i, g in enumerate(record["groups"]):
        cells = [f"<td>{html.escape(_day(g))}</td><td>{html.escape(g['model_version'])}</td>"]
        for key in ("rows", "labelled", "alerts", "precision", "recall", "pr_auc", "precision_at_budget", *ranked,
                    "fraud_amount_caught", "fraud_amount_missed"):  # fmt: skip
            cells.append(f"<td>{num(record, 'groups', i, key)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    join = record["join"]
    named = "".join(
        f"<li>{html.escape(label)}: {num(record, 'join', key)}"
        + (
            f" <span class='muted'>({html.escape(', '.join(join[key + '_named']))})</span>"
            if join.get(key + "_named")
            else ""
        )
        + "</li>"
        for key, label in (
            ("scored_rows", "scored rows"),
            ("labels", "labels read"),
            ("matched_labels", "labels joined with a score"),
            ("unlabelled_scores", "scores no label reached (yet)"),
            ("labels_never_scored", "labels for rows never scored"),
            ("keys_scored_more_than_once", "keys scored more than once"),
        )
    )
    trend = figure(
        "trend",
        images,
        "Left: realized precision, recall and PR-AUC per day. Right: the fraud amount caught and missed.",
    )
    head = f'<!doctype html><html><head><meta charset="utf-8"><title>Outcomes</title><style>{CSS}</style></head>'
    page = f"""{head}<body>
<h1>Outcomes: the models serving, once the labels arrived</h1>
<p class="muted">Scores recorded under {html.escape(record["output"])}/scoring ({len(record["batches"])} batches),
labels from {html.escape(record["labels"])}, joined by {html.escape(record["key"])}.</p>
<h2>Overall</h2>
<p>PR-AUC {num(record, "overall", "pr_auc")}, recall {num(record, "overall", "recall_at_precision")} at precision
{num(record, "overall", "at_precision")}; at the shipped thresholds precision {num(record, "overall", "precision")} and
recall {num(record, "overall", "recall")}; fraud amount caught {num(record, "overall", "fraud_amount_caught")},
missed {num(record, "overall", "fraud_amount_missed")}.</p>
<h2>Per day and model</h2>
<table><tr>{header}</tr>{"".join(rows)}</table>
{trend}
<h2>The join</h2><ul class="counts">{named}</ul>
</body></html>"""
    path = os.path.join(out_dir, OUTCOMES_FILE)
    with open(path, "w") as f:
        f.write(page)
    return path
