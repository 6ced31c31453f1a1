"""Spans: input data that arrives in time-ordered parts, named with the placeholders of TFX's input patterns.

A span pattern is a file glob relative to the data folder with either ``{SPAN}`` (a span number, e.g.
``span-{SPAN}/*.csv.gz`` for ``span-0007/part-1.csv.gz``) or a date, ``{YYYY}``, ``{MM}`` and ``{DD}`` together
(e.g. ``{YYYY}-{MM}-{DD}.csv.gz``). As in TFX, a date's span number is its day count since 1970-01-01, so spans
order the same way either way. A run reads the newest ``window`` spans (0: all of them) and, for the drift check,
knows the span before the newest.

Standard library only: the CLI uses it on local folders, CsvExampleGen's executor on any file system at run time.
"""

import dataclasses
import datetime
import re

SPAN = "{SPAN}"
DATE_PARTS = ("{YYYY}", "{MM}", "{DD}")
_GROUPS = {SPAN: r"(?P<span>\d+)", "{YYYY}": r"(?P<yyyy>\d{4})", "{MM}": r"(?P<mm>\d{2})", "{DD}": r"(?P<dd>\d{2})"}
_EPOCH = datetime.date(1970, 1, 1)
# Layouts a local folder is recognised by without a pattern: folders or files named by span number or by date.
DETECTED_LAYOUTS = (
    "span-{SPAN}/*.csv*",
    "span-{SPAN}.csv*",
    "{YYYY}-{MM}-{DD}/*.csv*",
    "{YYYY}-{MM}-{DD}.csv*",
)


class SpanPatternError(ValueError):
    """A span pattern that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class Span:
    """One span: its number (orders the spans), its label as the data names it, and its files (sorted)."""

    number: int
    label: str
    files: tuple[str, ...]


def has_placeholder(pattern: str) -> bool:
    return SPAN in pattern or any(part in pattern for part in DATE_PARTS)


def check(pattern: str) -> None:
    """Raises SpanPatternError unless the pattern has {SPAN}, or all of {YYYY}, {MM} and {DD}, but not both."""
    dates = [part in pattern for part in DATE_PARTS]
    if SPAN in pattern and any(dates):
        raise SpanPatternError(f"{pattern}: use {SPAN} or a date ({''.join(DATE_PARTS)}), not both")
    if SPAN not in pattern and not all(dates):
        raise SpanPatternError(f"{pattern}: a span pattern needs {SPAN}, or {{YYYY}}, {{MM}} and {{DD}} together")
    for placeholder in (SPAN, *DATE_PARTS):
        if pattern.count(placeholder) > 1:
            raise SpanPatternError(f"{pattern}: {placeholder} appears more than once")


def glob_of(pattern: str) -> str:
    """The file glob that matches every span of a pattern (its placeholders as '*')."""
    for placeholder in (SPAN, *DATE_PARTS):
        pattern = pattern.replace(placeholder, "*")
    return pattern


def _regex(pattern: str) -> re.Pattern:
    parts = re.split(r"(\{SPAN\}|\{YYYY\}|\{MM\}|\{DD\}|\*|\?)", pattern)
    out = []
    for part in parts:
        if part in _GROUPS:
            out.append(_GROUPS[part])
        elif part == "*":
            out.append(r"[^/]*")
        elif part == "?":
            out.append(r"[^/]")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out) + r"\Z")


def _number_and_label(match: re.Match) -> tuple[int, str]:
    found = match.groupdict()
    if found.get("span") is not None:
        return int(found["span"]), found["span"]
    try:
        day = datetime.date(int(found["yyyy"]), int(found["mm"]), int(found["dd"]))
    except ValueError as e:
        raise SpanPatternError(f"{match.string}: not a date ({e})") from e
    return (day - _EPOCH).days, day.isoformat()


def find(base: str, pattern: str, paths: list[str]) -> list[Span]:
    """The spans among paths (files under base), oldest first; files the pattern does not match are left out.

    Raises:
      SpanPatternError: two spans share a number (e.g. span-7 and span-007), or a date that does not exist.
    """
    check(pattern)
    regex = _regex(pattern)
    prefix = base.rstrip("/") + "/"
    found: dict[int, tuple[str, list[str]]] = {}
    for path in sorted(paths):
        match = regex.match(path.removeprefix(prefix))
        if match is None:
            continue
        number, label = _number_and_label(match)
        seen_label, files = found.setdefault(number, (label, []))
        if seen_label != label:
            raise SpanPatternError(f"spans {seen_label!r} and {label!r} have the same number {number}")
        files.append(path)
    return [Span(n, label, tuple(files)) for n, (label, files) in sorted(found.items())]


def newest(spans: list[Span], window: int) -> list[Span]:
    """The newest `window` spans (all when window is 0), oldest first."""
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    return list(spans[-window:]) if window else list(spans)


def detect(names: list[str]) -> str | None:
    """The layout of DETECTED_LAYOUTS that a folder's entries (relative paths of its files) follow, or None.

    A layout is taken when every CSV file in the folder is one of its spans, so a flat folder of CSV files without
    span names stays one input, as before.
    """
    csv_files = [n for n in names if re.search(r"\.csv(\.gz)?\Z", n)]
    if not csv_files:
        return None
    for layout in DETECTED_LAYOUTS:
        regex = _regex(layout)
        if all(regex.match(n) for n in csv_files):
            return layout
    return None
