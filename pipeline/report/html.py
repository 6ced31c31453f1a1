"""The reports' HTML pieces: numbers tagged with their path in the run's JSON record, figures, the stylesheet."""

import html
import math

# Numbers shown as whole counts; everything else is a rate, an area or a threshold.
COUNT_KEYS = {"tp", "fp", "tn", "fn", "example_count", "rows", "frauds", "epochs_run", "best_epoch"}


def _fmt(value, count: bool = False, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if count:
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def at(summary: dict, path) -> object:
    """The value at a path (a sequence of keys) in a JSON record."""
    value = summary
    for step in path:
        value = value[step]
    return value


def num(summary: dict, *path) -> str:
    """The value at path in summary.json, formatted, in a span whose data-key is that path."""
    value = at(summary, path)
    key = "/".join(str(p) for p in path)
    return (
        f'<span class="num" data-key="{html.escape(key)}" data-value="{html.escape(repr(value))}">'
        f"{_fmt(value, count=path[-1] in COUNT_KEYS)}</span>"
    )


def esc(text) -> str:
    return html.escape(str(text))


CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
img { max-width: 100%; border: 1px solid #eee; }
.verdict { font-size: 1.2em; font-weight: bold; padding: .4em .8em; display: inline-block; border-radius: 4px; }
.pass { background: #dff0d8; color: #2b542c; } .fail { background: #f2dede; color: #843534; }
.muted { color: #666; font-size: .9em; }
ul.counts li { margin: .15em 0; }
"""


def figure(name: str, images: dict, caption: str = "") -> str:
    """An embedded PNG (base64) with its caption; nothing when the figure was not drawn."""
    if name not in images:
        return ""
    return (
        f'<figure id="fig-{name}"><img alt="{esc(name)}" src="data:image/png;base64,{images[name]}">'
        f"<figcaption class='muted'>{caption}</figcaption></figure>"
    )
