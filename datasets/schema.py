"""The curated schema's first draft, from a dataset spec and what the first rows showed (datasets.check).

`fraud-pipeline run --dataset SPEC` writes it beside the spec when the spec's schema file is not there yet, for the
team to review and commit; from then on ImportSchemaGen brings it in and the ExampleValidator enforces it on every
split. Written as text (tensorflow_metadata's Schema in text format), with no import of TFX or TFDV.
"""

from datasets.spec import FLOAT, INT, DatasetSpec

_TYPES = {FLOAT: "FLOAT", INT: "INT", "bytes": "BYTES"}


def _feature(name: str, kind: str, domain: list[str], required: bool, serving: bool) -> list[str]:
    lines = ["feature {", f'  name: "{name}"', f"  type: {_TYPES[kind]}"]
    lines += domain
    if required:
        lines += ["  presence {", "    min_fraction: 1.0", "    min_count: 1", "  }", "  shape {", "    dim {"]
        lines += ["      size: 1", "    }", "  }"]
    else:
        lines += ["  presence {", "    min_count: 0", "  }", "  value_count {", "    min: 0", "    max: 1", "  }"]
    lines += [] if serving else ['  not_in_environment: "SERVING"']
    return lines + ["}"]


def bootstrap(spec: DatasetSpec, seen: dict, source: str) -> str:
    """The schema's text: every column of the spec (and feature of its history section) with its type, required or
    optional by its missing policy, the label an integer in {0, 1} absent at serving time, floats without NaN or
    infinity (and >= 0 where the first rows had no negative value, and for the history features).

    Args:
      spec: the dataset spec.
      seen: what datasets.check.check_rows returned for the first rows.
      source: the file the rows came from (named in the header comment).
    """
    out = [
        f"# Curated schema of the dataset {spec.name!r}: bootstrapped by fraud-pipeline from its spec and the first",
        f"# {seen.get('rows', 0):,} rows of {source}. Review it and commit it: the ExampleValidator enforces it on",
        "# every split of every run (a feature's type, presence and domain). Edit it to tighten a domain.",
        'default_environment: "TRAINING"',
        'default_environment: "SERVING"',
    ]
    minimum = seen.get("minimum", {})
    float_domain = ["  float_domain {", "    disallow_nan: true", "    disallow_inf: true", "  }"]
    for column in spec.features:
        kind = spec.example_kind(column)
        domain = []
        if kind == FLOAT:
            domain = list(float_domain)
            # A history feature (a count, a mean, a share) is never negative.
            if minimum.get(column, -1.0) >= 0.0 or column in spec.history_features:
                domain.insert(1, "    min: 0")
        required = not spec.may_be_missing(column)
        out += _feature(column, kind, domain, required, serving=True)
    label_domain = ["  int_domain {", "    min: 0", "    max: 1", "    is_categorical: true", "  }"]
    out += _feature(spec.label, INT, label_domain, required=True, serving=False)
    return "\n".join(out) + "\n"
