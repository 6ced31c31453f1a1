"""The dataset spec: one YAML file that names a transaction log's columns and says what the pipeline does with each.

The loader of the spec is the one module that knows what a dataset's columns are: the CSV contract, the curated
schema's bootstrap, the drift and skew thresholds, preprocessing_fn, the model's inputs, TFMA's slices, the serving
signatures and the readers of `predict` and `outcomes` take their names and types from a DatasetSpec. The ULB
credit-card spec (datasets/ulb/dataset.yaml) is the default; docs/your-data.md walks through writing one.

A spec that is not well formed raises SpecError naming the field (`numeric[2].transform: ...`); a spec that does not
fit the data (datasets.check) raises SpecMismatchError naming the field and the column. Neither needs TensorFlow.
"""

import dataclasses
import datetime
import functools
import hashlib
import json
import math
import os

import yaml

DATASETS_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SPEC = os.path.join(DATASETS_DIR, "ulb", "dataset.yaml")

TIME_FORMATS = ("seconds", "iso8601")
NUMERIC_TRANSFORMS = ("zscore", "log_zscore")
MISSING_POLICIES = ("forbid", "impute")
CATEGORICAL_KINDS = ("string", "int")
ENCODINGS = ("auto", "one_hot", "embedding")
# tf.Example value kinds of the raw columns.
FLOAT, INT, BYTES = "float", "int", "bytes"
# The token a missing categorical value becomes before its vocabulary is applied (a category of its own).
MISSING_TOKEN = "__missing__"
# What Transform appends to a numeric feature's name for its missing-value indicator.
MISSING_SUFFIX = "_missing"
# What Transform appends to a categorical feature fed as an embedding (its vocabulary index, one column).
EMBEDDING_SUFFIX = "_id"
# The aggregates a history window can hold (History below).
AGGREGATES = ("count", "sum", "mean", "ratio_to_mean", "fraud_rate")
# Aggregates of the value column (History.value).
VALUE_AGGREGATES = ("sum", "mean", "ratio_to_mean")
# Durations in the spec: a whole number and a unit.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class SpecError(ValueError):
    """A dataset spec that is not well formed; the message names the file and the field."""


class SpecMismatchError(ValueError):
    """A dataset spec that does not fit the data; the message names the field, the column and the file."""


@dataclasses.dataclass(frozen=True)
class Numeric:
    """A numeric model input: z-score (after log(x + log_offset) for log_zscore) on the train split, clipped to
    [-clip, clip]; a missing value is refused ('forbid') or imputed with the train split's mean, with a 0/1
    indicator input (the feature's name + MISSING_SUFFIX)."""

    name: str
    transform: str = "zscore"
    clip: float = 5.0
    log_offset: float = 0.001
    missing: str = "forbid"


@dataclasses.dataclass(frozen=True)
class Categorical:
    """A categorical model input: a vocabulary learnt on the train split (the top_k most frequent values seen at
    least min_frequency times), oov_buckets more indices for the rest; one-hot when its width (top_k + oov_buckets)
    is at most one_hot_max ('auto'), an embedding of embedding_dim otherwise. A missing value is a category of its
    own ('impute') or refused ('forbid'). More than max_cardinality distinct values in the data is a spec that does
    not fit it (an id column mistaken for a category)."""

    name: str
    kind: str = "string"
    top_k: int = 50
    min_frequency: int = 1
    oov_buckets: int = 1
    encoding: str = "auto"
    one_hot_max: int = 32
    embedding_dim: int = 8
    max_cardinality: int = 10000
    missing: str = "impute"

    @property
    def width(self) -> int:
        """The vocabulary's size at most, with its out-of-vocabulary buckets: the one-hot width."""
        return self.top_k + self.oov_buckets

    @property
    def embedded(self) -> bool:
        return self.encoding == "embedding" or (self.encoding == "auto" and self.width > self.one_hot_max)


@dataclasses.dataclass(frozen=True)
class Slice:
    """An evaluation slice, by name: a numeric column cut at edges (labels: one more than edges), the hour of day
    in windows of `hours` (of the time column), or a categorical or entity column's own values."""

    name: str
    column: str = ""
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    hours: int = 0

    @property
    def kind(self) -> str:
        return "hour_of_day" if self.hours else ("bucket" if self.edges else "value")


@dataclasses.dataclass(frozen=True)
class Drift:
    """Drift and skew thresholds: Jensen-Shannon divergence on quantile histograms for numeric features,
    L-infinity distance for categorical features and the label; per-feature overrides in `features` (a threshold,
    or null to compare nothing)."""

    numeric: float = 0.5
    categorical: float = 0.3
    label: float = 0.15
    features: tuple[tuple[str, float | None], ...] = ()


@dataclasses.dataclass(frozen=True)
class History:
    """Windowed aggregates of an entity's past transactions (a card's, a terminal's), point in time: each row's
    window of `w` covers the entity's rows strictly earlier than it and later than its time minus `w`, the row itself
    included (a row at the same second as another is not in its window: which came first is not known). With a
    `delay`, the window ends `delay` before the row instead, (t - delay - w, t - delay], and the row is not in it:
    the labels of that window are known by the row's time. `fraud_rate` needs a delay (labels arrive late).

    The aggregates: count (rows), sum and mean of the `value` column, ratio_to_mean (the row's value over the
    window's mean), fraud_rate (the window's frauds over its rows). A window with no row gives `empty` (count gives 0);
    a row whose entity is missing gets `empty` for every aggregate and 0 for counts. Each aggregate of each window
    is a numeric feature of the model, named by feature_name."""

    entity: str
    windows: tuple[str, ...]
    aggregates: tuple[str, ...]
    value: str = ""
    delay: str = ""
    empty: float = 0.0

    @functools.cached_property  # read for each row a scorer serves
    def window_seconds(self) -> tuple[int, ...]:
        return tuple(duration_seconds(w) for w in self.windows)

    @functools.cached_property  # read for each row a scorer serves
    def delay_seconds(self) -> int:
        return duration_seconds(self.delay) if self.delay else 0

    @functools.cached_property  # read for each row a scorer serves
    def span_seconds(self) -> int:
        """How far back a row's windows reach: the longest window plus the delay."""
        return max(self.window_seconds) + self.delay_seconds

    def feature_name(self, aggregate: str, window: str) -> str:
        of = f"_{self.value}" if aggregate in VALUE_AGGREGATES else ""
        return f"{self.entity}_{aggregate}{of}_{window}"

    @functools.cached_property  # read for each row a scorer serves
    def features(self) -> tuple[tuple[str, str, str], ...]:
        """(feature name, aggregate, window) for each aggregate of each window, window by window."""
        return tuple((self.feature_name(a, w), a, w) for w in self.windows for a in self.aggregates)


@dataclasses.dataclass(frozen=True)
class CardPrecision:
    """The Fraud Detection Handbook's card precision@k: each day, of the k values of `entity` (cards) with the
    highest score that day (a card's highest of the day), the share that had a fraud that day; the mean over days.
    What a team that checks k cards a day finds. Named card_precision_at_K in the Evaluator's and outcomes' metrics."""

    entity: str
    k: int = 100

    @property
    def metric(self) -> str:
        return f"card_precision_at_{self.k}"


def duration_seconds(text: str) -> int:
    """'30s', '15m', '1h', '7d', '2w' as seconds; ValueError when it is not one."""
    text = str(text).strip()
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in DURATION_UNITS or int(number) <= 0:
        raise ValueError(f"{text!r} is not a duration (a whole number and one of {', '.join(DURATION_UNITS)})")
    return int(number) * DURATION_UNITS[unit]


def history_numeric(item: History) -> tuple[Numeric, ...]:
    """The model inputs of a history section's entry: counts, sums, means and ratios through log(x + 1) (they are
    at least 0 and heavy-tailed), fraud rates as they are (shares in [0, 1]); all z-scored and clipped as the
    spec's other numeric features."""
    return tuple(
        Numeric(name=name, transform="zscore" if aggregate == "fraud_rate" else "log_zscore", log_offset=1.0)
        for name, aggregate, _ in item.features
    )


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A parsed, checked dataset spec (see the module docstring and docs/your-data.md for the file's fields)."""

    name: str
    label: str
    positive: str
    negative: tuple[str, ...]
    time: str
    time_format: str
    numeric: tuple[Numeric, ...]
    categorical: tuple[Categorical, ...] = ()
    key: str = ""
    entities: tuple[str, ...] = ()
    time_of_day: bool = True
    slices: tuple[Slice, ...] = ()
    drift: Drift = Drift()
    schema: str = "schema.pbtxt"
    # The column of the transaction's amount (a numeric feature), for the money `outcomes` counts; optional.
    amount: str = ""
    # Windowed aggregates per entity (History); their features close `numeric`, after the spec's own.
    history: tuple[History, ...] = ()
    # Where `predict`, `outcomes` and the model server keep the rows the history windows read at serving time: a
    # PostgreSQL URL, or "" for an SQLite file under the output folder.
    online_store: str = ""
    # The entity card precision@k ranks (the Evaluator's and outcomes' metric); by default the first entity's, k 100.
    card_precision: CardPrecision | None = None
    # The folder of the spec file (where its schema is), not part of the spec's content.
    folder: str = dataclasses.field(default="", compare=False)

    # -- the columns ----------------------------------------------------------------------------------------------

    @property
    def features(self) -> tuple[str, ...]:
        """Every raw column the examples carry but the label, in the spec's order: time, key, entities, numeric
        (the history features last), categorical."""
        key = (self.key,) if self.key else ()
        return (self.time, *key, *self.entities, *(f.name for f in self.numeric), *(f.name for f in self.categorical))

    @property
    def raw_numeric(self) -> tuple[Numeric, ...]:
        """The numeric features the spec lists (the data's columns), without the history section's."""
        return self.numeric[: len(self.numeric) - len(self.history_features)]

    @property
    def history_features(self) -> tuple[str, ...]:
        """The features the history section adds (computed, never a column of the data's files)."""
        return tuple(name for item in self.history for name, _, _ in item.features)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of a training file: the features but the history ones, and the label."""
        derived = set(self.history_features)
        return (*(c for c in self.features if c not in derived), self.label)

    @property
    def model_features(self) -> tuple[str, ...]:
        """The raw columns that feed the model (numeric, then categorical)."""
        return (*(f.name for f in self.numeric), *(f.name for f in self.categorical))

    @property
    def input_features(self) -> tuple[str, ...]:
        """The model's features that a file or a request brings (model_features but the history ones)."""
        derived = set(self.history_features)
        return tuple(c for c in self.model_features if c not in derived)

    @property
    def history_span(self) -> int:
        """How far back, in seconds, the history windows of a row reach (0 without a history section)."""
        return max((item.span_seconds for item in self.history), default=0)

    def example_kind(self, column: str) -> str:
        """How a column is stored in a tf.Example: FLOAT, INT or BYTES (the label is always 0/1 INT; an ISO time is
        INT seconds since the Unix epoch)."""
        if column == self.label:
            return INT
        if column == self.time:
            return FLOAT if self.time_format == "seconds" else INT
        if column in {f.name for f in self.numeric}:
            return FLOAT
        for f in self.categorical:
            if f.name == column:
                return INT if f.kind == "int" else BYTES
        if column == self.key or column in self.entities:
            return BYTES
        raise KeyError(column)

    def may_be_missing(self, column: str) -> bool:
        """May a cell of this column be empty (a feature whose policy imputes it)?"""
        for f in (*self.numeric, *self.categorical):
            if f.name == column:
                return f.missing == "impute"
        return column in self.entities

    # -- the values -----------------------------------------------------------------------------------------------

    def label_of(self, cell: str) -> int | None:
        """1 for the positive value, 0 for a negative one (any other value when the spec lists none), None for
        a value that is neither (or empty). A numeric label matches by value ('1.0' is 1)."""
        text = cell.strip()
        if not text:
            return None
        if _same(text, self.positive):
            return 1
        if not self.negative:
            return 0 if not _is_number(self.positive) or _is_number(text) else None
        return 0 if any(_same(text, n) for n in self.negative) else None

    def time_of(self, cell: str) -> float | int | None:
        """The event time of a cell: seconds as a float, or an ISO-8601 date-time as whole seconds since the Unix
        epoch (UTC when it has no offset); None when it does not parse."""
        text = cell.strip()
        if self.time_format == "seconds":
            try:
                value = float(text)
            except ValueError:
                return None
            return value if math.isfinite(value) else None
        return iso_seconds(text)

    @property
    def label_is_integer(self) -> bool:
        """Is the label the 0/1 integer it is stored as (the default dataset's), rather than mapped by the spec?"""
        return self.positive == "1" and self.negative in ((), ("0",))

    def value_of(self, column: str, cell: str):
        """A non-empty cell as its column is stored (the label 0/1 or, for a 0/1 label, the integer written; the time
        as seconds; a number; text), None when it does not parse as that."""
        kind = self.example_kind(column)
        if column == self.label and not self.label_is_integer:
            return self.label_of(cell)
        if column == self.time and self.time_format != "seconds":
            return self.time_of(cell)
        if kind == INT:
            return integer(cell)
        if kind == FLOAT:
            try:
                return float(cell)
            except ValueError:
                return None
        return cell

    # -- identity -------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The spec in the file's layout, every field spelled out (parse() reads it back)."""
        return {
            "name": self.name,
            "label": {"column": self.label, "positive": self.positive, "negative": list(self.negative)},
            "time": {"column": self.time, "format": self.time_format},
            "key": self.key,
            "entities": list(self.entities),
            "numeric": [dataclasses.asdict(f) for f in self.raw_numeric],
            "categorical": [dataclasses.asdict(f) for f in self.categorical],
            "time_of_day": self.time_of_day,
            "slices": [
                {**dataclasses.asdict(s), "edges": list(s.edges), "labels": list(s.labels)} for s in self.slices
            ],
            "drift": {**dataclasses.asdict(self.drift), "features": dict(self.drift.features)},
            "schema": self.schema,
            "amount": self.amount,
            **({"history": [_history_dict(h) for h in self.history]} if self.history else {}),
            **({"online_store": self.online_store} if self.online_store else {}),
            **({"card_precision": dataclasses.asdict(self.card_precision)} if self.card_precision else {}),
        }

    def to_json(self) -> str:
        """The spec's content as canonical JSON: what components receive and what a pushed version keeps."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def schema_path(self) -> str:
        return os.path.join(self.folder, self.schema) if self.folder else self.schema


def _history_dict(item: History) -> dict:
    return {**dataclasses.asdict(item), "windows": list(item.windows), "aggregates": list(item.aggregates)}


def integer(cell: str) -> int | None:
    """The cell as an integer, also when written as an integral float ('1.0', as pandas writes it); else None."""
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _same(cell: str, value: str) -> bool:
    if cell == value:
        return True
    return _is_number(cell) and _is_number(value) and float(cell) == float(value)


def iso_seconds(text: str) -> int | None:
    """An ISO-8601 date-time ('2026-03-01T08:15:00', with a space for the T, with Z or an offset) as whole seconds
    since the Unix epoch, UTC when it has no offset; None when it is not one."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return math.floor(moment.timestamp())


# -- reading the file ----------------------------------------------------------------------------------------------


class _Fields:
    """A mapping read field by field, naming the path of what is wrong, and refusing fields nobody reads."""

    def __init__(self, source: str, where: str, value):
        if not isinstance(value, dict):
            raise SpecError(f"{source}: {where or 'the file'} must be a mapping, got {type(value).__name__}")
        self.source, self.where, self.value, self.read = source, where, value, set()

    def path(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, message: str) -> SpecError:
        return SpecError(f"{self.source}: {self.path(name)}: {message}")

    def get(self, name: str, kind, default=dataclasses.MISSING, choices=None, minimum=None):
        self.read.add(name)
        if name not in self.value or self.value[name] is None:
            if default is dataclasses.MISSING:
                raise self.error(name, "is required")
            return default
        value = self.value[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = _text(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(name, f"must be {kind.__name__}, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(name, f"{value!r} is not one of {', '.join(choices)}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise self.error(name, f"must be a finite number, got {value!r}")
        return value

    def items(self, name: str) -> list:
        self.read.add(name)
        value = self.value.get(name) or []
        if not isinstance(value, list):
            raise self.error(name, f"must be a list, got {type(value).__name__}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.value) - self.read)
        if unknown:
            raise SpecError(f"{self.source}: {self.where or 'the file'} has fields the spec does not know: {unknown}")


def _text(value) -> str:
    """A YAML scalar as the text a CSV cell would hold (1 -> '1', 1.5 -> '1.5')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Item(_Fields):
    """A feature's entry: a mapping, or a bare column name."""

    def __init__(self, source: str, where: str, value):
        super().__init__(source, where, value if isinstance(value, dict) else {"name": value})


def load(path: str | None = None) -> DatasetSpec:
    """The spec in a YAML file (the ULB default when None), checked.

    Raises:
      SpecError: the file cannot be read or a field is wrong (its path in the file named).
    """
    path = os.path.abspath(path or DEFAULT_SPEC)
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise SpecError(f"{path}: cannot read the dataset spec ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not YAML ({e})") from e
    return parse(raw, path, folder=os.path.dirname(path))


def from_json(text: str, folder: str = "") -> DatasetSpec:
    """The spec of DatasetSpec.to_json (what components and pushed versions carry)."""
    return parse(json.loads(text), "the dataset spec (JSON)", folder=folder)


def of_config(config: dict | None) -> DatasetSpec:
    """The spec a component's custom config carries under "dataset" (as JSON), or the default one."""
    text = (config or {}).get("dataset")
    return from_json(text) if text else default()


def parse(raw, source: str, folder: str = "") -> DatasetSpec:
    """A DatasetSpec from the file's mapping (see load), checked field by field and as a whole."""
    top = _Fields(source, "", raw)
    label = _Fields(source, "label", top.value.get("label"))
    time = _Fields(source, "time", top.value.get("time"))
    top.read |= {"label", "time"}
    drift_raw = top.value.get("drift") or {}
    top.read.add("drift")
    drift = _Fields(source, "drift", drift_raw)
    overrides = drift.value.get("features") or {}
    drift.read.add("features")
    if not isinstance(overrides, dict):
        raise drift.error("features", "must be a mapping of column -> threshold (or null)")
    for column, threshold in overrides.items():
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise drift.error(f"features.{column}", f"must be a number or null, got {threshold!r}")
    numeric = _features(source, top, "numeric", Numeric)
    history = tuple(_history(source, i, h) for i, h in enumerate(top.items("history")))
    entities = tuple(str(v) for v in top.items("entities"))
    spec = DatasetSpec(
        name=top.get("name", str),
        label=label.get("column", str),
        positive=label.get("positive", str),
        negative=tuple(_text(v) for v in label.items("negative")),
        time=time.get("column", str),
        time_format=time.get("format", str, "seconds", TIME_FORMATS),
        key=top.get("key", str, ""),
        entities=entities,
        numeric=(*numeric, *(f for item in history for f in history_numeric(item))),
        categorical=_features(source, top, "categorical", Categorical),
        time_of_day=top.get("time_of_day", bool, True),
        slices=tuple(_slice(source, i, s) for i, s in enumerate(top.items("slices"))),
        drift=Drift(
            numeric=drift.get("numeric", float, 0.5, minimum=0.0),
            categorical=drift.get("categorical", float, 0.3, minimum=0.0),
            label=drift.get("label", float, 0.15, minimum=0.0),
            features=tuple(sorted((str(k), None if v is None else float(v)) for k, v in overrides.items())),
        ),
        schema=top.get("schema", str, "schema.pbtxt"),
        amount=top.get("amount", str, ""),
        history=history,
        online_store=top.get("online_store", str, ""),
        card_precision=_card_precision(source, top, entities),
        folder=folder,
    )
    top.read |= {"numeric_defaults", "categorical_defaults"}
    for fields in (label, time, drift, top):
        fields.done()
    _check_whole(spec, source)
    return spec


_CHOICES = {
    Numeric: ({"transform": NUMERIC_TRANSFORMS, "missing": MISSING_POLICIES}, {"clip": 0.0, "log_offset": 0.0}),
    Categorical: (
        {"kind": CATEGORICAL_KINDS, "encoding": ENCODINGS, "missing": MISSING_POLICIES},
        {"top_k": 1, "min_frequency": 1, "oov_buckets": 1, "one_hot_max": 1, "embedding_dim": 1, "max_cardinality": 1},
    ),
}


def _features(source: str, top: _Fields, name: str, cls) -> tuple:
    top.read.add(name)
    defaults_raw = top.value.get(f"{name}_defaults") or {}
    if not isinstance(defaults_raw, dict):
        raise top.error(f"{name}_defaults", "must be a mapping of a feature's fields")
    allowed = {f.name for f in dataclasses.fields(cls)} - {"name"}
    unknown = sorted(set(defaults_raw) - allowed)
    if unknown:
        raise top.error(f"{name}_defaults.{unknown[0]}", f"is not a field of a {name} feature")
    choices, minimums = _CHOICES[cls]
    out = []
    for i, item in enumerate(top.items(name)):
        entry = _Item(source, f"{name}[{i}]", item)
        # The section's defaults fill what the entry does not say, and are checked as the entry's own fields.
        entry.value = {**defaults_raw, **entry.value}
        values = {}
        for field in dataclasses.fields(cls):
            kind = field.type if isinstance(field.type, type) else {"str": str, "int": int, "float": float}[field.type]
            default = float(field.default) if kind is float else field.default
            values[field.name] = entry.get(field.name, kind, default, choices.get(field.name), minimums.get(field.name))
        entry.done()
        out.append(cls(**values))
    return tuple(out)


def _slice(source: str, index: int, raw) -> Slice:
    fields = _Fields(source, f"slices[{index}]", raw)
    edges = fields.items("edges")
    labels = fields.items("labels")
    where = fields.path("edges")
    if any(isinstance(e, bool) or not isinstance(e, (int, float)) for e in edges):
        raise SpecError(f"{source}: {where}: must be numbers, got {edges!r}")
    if list(edges) != sorted(set(edges)):
        raise SpecError(f"{source}: {where}: must increase, got {edges!r}")
    item = Slice(
        name=fields.get("name", str),
        column=fields.get("column", str, ""),
        edges=tuple(float(e) for e in edges),
        labels=tuple(str(v) for v in labels),
        hours=fields.get("hours", int, 0, minimum=0),
    )
    fields.done()
    if item.edges and len(item.labels) != len(item.edges) + 1:
        raise fields.error("labels", f"needs one label more than edges ({len(item.edges) + 1}), got {len(item.labels)}")
    if item.hours and (24 % item.hours or item.column):
        raise fields.error("hours", "must divide 24, and takes no column (it is the time column's hour of day)")
    if not item.hours and not item.column:
        raise fields.error("column", "is required (or hours, for the hour of day)")
    return item


def _card_precision(source: str, top: _Fields, entities: tuple[str, ...]) -> CardPrecision | None:
    """The spec's card_precision ({entity, k}); without it, the first entity's at k 100 (none without entities)."""
    top.read.add("card_precision")
    raw = top.value.get("card_precision")
    if raw is None:
        return CardPrecision(entities[0]) if entities else None
    fields = _Fields(source, "card_precision", raw)
    item = CardPrecision(entity=fields.get("entity", str), k=fields.get("k", int, 100, minimum=1))
    fields.done()
    if item.entity not in entities:
        raise fields.error("entity", f"{item.entity!r} is not one of the spec's entities ({', '.join(entities)})")
    return item


def _history(source: str, index: int, raw) -> History:
    fields = _Fields(source, f"history[{index}]", raw)
    windows = [_text(w) for w in fields.items("windows")]
    aggregates = [str(a) for a in fields.items("aggregates")]
    item = History(
        entity=fields.get("entity", str),
        windows=tuple(windows),
        aggregates=tuple(aggregates),
        value=fields.get("value", str, ""),
        delay=fields.get("delay", str, ""),
        empty=fields.get("empty", float, 0.0),
    )
    fields.done()
    if not windows:
        raise fields.error("windows", "needs at least one window (1h, 1d, 7d, ...)")
    if not aggregates:
        raise fields.error("aggregates", f"needs at least one of {', '.join(AGGREGATES)}")
    for i, window in enumerate(windows):
        try:
            duration_seconds(window)
        except ValueError as e:
            raise fields.error(f"windows[{i}]", str(e)) from None
    if len(set(item.window_seconds)) != len(windows):
        raise fields.error("windows", f"names a window twice: {windows}")
    for i, aggregate in enumerate(aggregates):
        if aggregate not in AGGREGATES:
            raise fields.error(f"aggregates[{i}]", f"{aggregate!r} is not one of {', '.join(AGGREGATES)}")
    if len(set(aggregates)) != len(aggregates):
        raise fields.error("aggregates", f"names an aggregate twice: {aggregates}")
    if item.delay:
        try:
            duration_seconds(item.delay)
        except ValueError as e:
            raise fields.error("delay", str(e)) from None
    if "fraud_rate" in aggregates and not item.delay:
        raise fields.error("delay", "is required by fraud_rate: a label is known some time after its transaction")
    if any(a in VALUE_AGGREGATES for a in aggregates) and not item.value:
        raise fields.error("value", f"is required by {', '.join(a for a in aggregates if a in VALUE_AGGREGATES)}")
    if item.value and not any(a in VALUE_AGGREGATES for a in aggregates):
        raise fields.error("value", f"is read by none of the aggregates ({', '.join(VALUE_AGGREGATES)} read it)")
    return item


def _check_history(spec: DatasetSpec, source: str) -> None:
    """A history entry's entity is an id column (an entity, the key, a categorical column); its value a numeric column
    of the data that is never missing; a fraud rate needs the key (the labels `outcomes` brings join on it)."""
    numeric = {f.name: f for f in spec.raw_numeric}
    ids = {*spec.entities, *(f.name for f in spec.categorical), *([spec.key] if spec.key else [])}
    for i, item in enumerate(spec.history):
        where = f"{source}: history[{i}]"
        if item.entity not in ids:
            raise SpecError(f"{where}.entity: {item.entity!r} is not an entity, the key or a categorical column")
        if item.value and item.value not in numeric:
            raise SpecError(f"{where}.value: {item.value!r} is not a numeric column of the spec")
        if item.value and numeric[item.value].missing != "forbid":
            raise SpecError(f"{where}.value: {item.value!r} may be missing (its missing is impute); a window sums it")
        if "fraud_rate" in item.aggregates and not spec.key:
            raise SpecError(f"{where}.aggregates: fraud_rate needs the spec's key (labels join on it at serving)")
    if spec.online_store and not spec.online_store.startswith(("postgresql://", "postgres://")):
        raise SpecError(
            f"{source}: online_store: must be a postgresql:// URL (or absent, for SQLite), got "
            f"{spec.online_store.split('@')[-1]!r}"
        )


def _check_whole(spec: DatasetSpec, source: str) -> None:
    """What no single field shows: a column named twice, a slice or drift override naming no column, a label
    value that is both positive and negative."""
    seen: dict[str, str] = {}
    roles = [("label.column", spec.label), ("time.column", spec.time)]
    roles += [("key", spec.key)] if spec.key else []
    roles += [(f"entities[{i}]", c) for i, c in enumerate(spec.entities)]
    roles += [(f"numeric[{i}].name", f.name) for i, f in enumerate(spec.raw_numeric)]
    roles += [(f"history[{i}] (its feature)", name) for i, h in enumerate(spec.history) for name, _, _ in h.features]
    roles += [(f"categorical[{i}].name", f.name) for i, f in enumerate(spec.categorical)]
    for where, column in roles:
        if not column:
            raise SpecError(f"{source}: {where}: is empty")
        if column in seen:
            raise SpecError(f"{source}: {where}: column {column!r} is already {seen[column]}")
        seen[column] = where
    if not spec.model_features:
        raise SpecError(f"{source}: numeric, categorical: the model needs at least one feature")
    if any(_same(spec.positive, n) for n in spec.negative):
        raise SpecError(f"{source}: label.negative: holds the positive value {spec.positive!r}")
    names = set()
    for i, item in enumerate(spec.slices):
        if item.name in names or item.name in seen:
            raise SpecError(f"{source}: slices[{i}].name: {item.name!r} is already a slice or a column")
        names.add(item.name)
        if item.column and item.column not in seen:
            raise SpecError(f"{source}: slices[{i}].column: {item.column!r} is not a column of the spec")
        numeric = {f.name for f in spec.numeric}
        if item.edges and item.column not in numeric:
            raise SpecError(f"{source}: slices[{i}].edges: {item.column!r} is not a numeric feature")
        if not item.edges and not item.hours and item.column in numeric:
            raise SpecError(f"{source}: slices[{i}]: a numeric column needs edges to be sliced")
    if spec.amount and spec.amount not in {f.name for f in spec.numeric}:
        raise SpecError(f"{source}: amount: {spec.amount!r} is not a numeric feature of the spec")
    for column, _ in spec.drift.features:
        if column not in seen:
            raise SpecError(f"{source}: drift.features.{column}: is not a column of the spec")
    _check_history(spec, source)


def default() -> DatasetSpec:
    """The ULB credit-card spec (datasets/ulb/dataset.yaml), loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load(DEFAULT_SPEC)
    return _DEFAULT


_DEFAULT: DatasetSpec | None = None


def unreadable(model: DatasetSpec, data: DatasetSpec) -> list[str]:
    """The columns a model of spec `model` reads that examples of spec `data` lack, or hold as another kind ([] when
    the model can score them: a serving model is a baseline only then)."""
    return [
        c
        for c in model.features
        if c != model.label and (c not in data.features or data.example_kind(c) != model.example_kind(c))
    ]


def changes(before: DatasetSpec, after: DatasetSpec) -> list[str]:
    """What changed from one spec to another, one phrase a field ([] when they are the same): what a run says when
    its spec differs from the serving version's."""
    old, new = before.to_dict(), after.to_dict()
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key in ("numeric", "categorical"):
            olds = {f["name"]: f for f in old.get(key, [])}
            news = {f["name"]: f for f in new.get(key, [])}
            for verb, names in (
                ("added", [n for n in news if n not in olds]),
                ("removed", [n for n in olds if n not in news]),
            ):
                if names:
                    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                    out.append(f"{key} features {verb}: {shown}")
            for n in olds.keys() & news.keys():
                fields = [k for k in news[n] if olds[n].get(k) != news[n].get(k)]
                out += [f"{key} feature {n!r}: {k} {olds[n][k]!r} -> {news[n][k]!r}" for k in fields]
        elif key in ("slices", "drift"):
            out.append(f"{key} changed")
        else:
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out


def drift_config(spec: DatasetSpec) -> str:
    """The DistributionValidator's thresholds (tfx.proto.DistributionValidatorConfig, text format) from the spec's
    drift section: each numeric feature by the approximate Jensen-Shannon divergence of quantile histograms, each
    categorical feature and the label by the L-infinity distance of their value shares. The time column, the key and
    the entities are never compared (later data always has later times; ids are not distributions)."""
    overrides = dict(spec.drift.features)
    lines = ["default_slice_config {"]

    def feature(name: str, comparator: str) -> None:
        lines.extend(
            ["  feature {", f'    path {{ step: "{name}" }}', f"    distribution_comparator {{ {comparator} }}"]
        )
        lines.append("  }")

    for f in spec.numeric:
        threshold = overrides.get(f.name, spec.drift.numeric)
        if threshold is not None:
            feature(f.name, f"jensen_shannon_divergence {{ threshold: {threshold!r} source {{ type: QUANTILES }} }}")
    for f in spec.categorical:
        threshold = overrides.get(f.name, spec.drift.categorical)
        if threshold is not None:
            feature(f.name, f"infinity_norm {{ threshold: {threshold!r} }}")
    threshold = overrides.get(spec.label, spec.drift.label)
    if threshold is not None:
        feature(spec.label, f"infinity_norm {{ threshold: {threshold!r} }}")
    return "\n".join([*lines, "}"]) + "\n"
