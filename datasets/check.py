"""Does a dataset spec fit the data? Checked on a file's header and first rows before anything is trained.

A spec that names a column the file lacks, a numeric column holding text, a label with a third value, a time that
does not parse, a categorical column past its cardinality cap or a missing value where the spec forbids one is a
SpecMismatchError naming the spec's field, the column, the file and the line. Standard library only.
"""

from collections.abc import Iterable

from datasets.spec import DatasetSpec, SpecMismatchError

# The rows of the first file the check reads (the whole file is validated later, against the schema).
SAMPLE_ROWS = 20000


def _where(spec: DatasetSpec) -> dict[str, str]:
    """Each column's field in the spec (numeric[2].name, label.column, ...)."""
    out = {spec.label: "label.column", spec.time: "time.column"}
    out.update({spec.key: "key"} if spec.key else {})
    out.update({c: f"entities[{i}]" for i, c in enumerate(spec.entities)})
    # The history section's features are computed by the pipeline, not read from the file.
    out.update({f.name: f"numeric[{i}]" for i, f in enumerate(spec.raw_numeric)})
    out.update({f.name: f"categorical[{i}]" for i, f in enumerate(spec.categorical)})
    return out


def check_header(spec: DatasetSpec, header: list[str], path: str) -> None:
    """Every column of the spec is in the header, and the header has no column the spec does not name."""
    where = _where(spec)
    for column, field in where.items():
        if column not in header:
            raise SpecMismatchError(
                f"dataset spec {field}: column {column!r} is not in {path} (its columns: {', '.join(header[:12])}"
                f"{', ...' if len(header) > 12 else ''})"
            )
    extra = [c for c in header if c not in where]
    if extra:
        raise SpecMismatchError(
            f"{path} has columns the dataset spec does not name: {', '.join(extra[:8])}; add each to the spec (a "
            "feature, or an entity to keep it out of the model) or drop it from the file"
        )


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def check_rows(spec: DatasetSpec, header: list[str], rows: Iterable[tuple[int, list[str]]], path: str) -> dict:
    """Checks the cells of (line, cells) rows against the spec; returns what it saw (rows, distinct values of each
    categorical column, label counts).

    Raises:
      SpecMismatchError: the first cell that does not fit, naming the spec's field, the column and the line.
    """
    where = _where(spec)
    index = {c: header.index(c) for c in where}
    categorical = {f.name: f for f in spec.categorical}
    numeric = {f.name: f for f in spec.numeric}
    distinct: dict[str, set] = {c: set() for c in categorical}
    minimum: dict[str, float] = {}
    labels = {0: 0, 1: 0}
    count = 0
    for line, cells in rows:
        count += 1
        for column, i in index.items():
            cell = cells[i].strip() if i < len(cells) else ""
            field = where[column]
            if not cell:
                if column in (spec.label, spec.time) or not spec.may_be_missing(column) and column != spec.key:
                    what = field if column in (spec.label, spec.time) else f"{field}.missing is forbid"
                    raise SpecMismatchError(f"dataset spec {what}: {column!r} is empty on {path}, line {line}")
                continue
            if column == spec.label:
                value = spec.label_of(cell)
                if value is None:
                    raise SpecMismatchError(
                        f"dataset spec label: {column!r} is {cell!r} on {path}, line {line}: neither the positive "
                        f"value {spec.positive!r} nor a negative one "
                        f"({', '.join(map(repr, spec.negative)) or 'any other'})"
                    )
                labels[value] += 1
            elif column == spec.time:
                if spec.time_of(cell) is None:
                    raise SpecMismatchError(
                        f"dataset spec time.format ({spec.time_format}): {column!r} is {cell!r} on {path}, "
                        f"line {line}, which does not parse as one"
                    )
            elif column in numeric:
                if not _number(cell):
                    raise SpecMismatchError(
                        f"dataset spec {field}: {column!r} is numeric but is {cell[:40]!r} on {path}, line {line}"
                    )
                minimum[column] = min(minimum.get(column, float("inf")), float(cell))
            elif column in categorical:
                feature = categorical[column]
                if feature.kind == "int" and not cell.lstrip("-").isdigit():
                    raise SpecMismatchError(
                        f"dataset spec {field}.kind (int): {column!r} is {cell[:40]!r} on {path}, line {line}"
                    )
                seen = distinct[column]
                seen.add(cell)
                if len(seen) > feature.max_cardinality:
                    raise SpecMismatchError(
                        f"dataset spec {field}.max_cardinality: {column!r} has more than {feature.max_cardinality:,} "
                        f"distinct values by {path}, line {line} (an id rather than a category? make it an entity, "
                        "or raise the cap)"
                    )
    if count and spec.negative == () and len({c for c in labels if labels[c]}) == 1 and not labels[1]:
        raise SpecMismatchError(
            f"dataset spec label.positive: no row of the first {count:,} of {path} has {spec.label} = {spec.positive!r}"
        )
    return {"rows": count, "distinct": {c: len(v) for c, v in distinct.items()}, "labels": labels, "minimum": minimum}
