"""A request's history features, from the online store (pipeline/online_store), before the model scores it.

For a version whose dataset spec has a history section, each row of a request is written into the store (its time,
key, entities and value columns) and served its windows at its event time, as `predict` does a batch's; the
features go into the request's inputs (the raw-features signature) or into its tf.Examples (the examples
signature). A row without its entity gets the spec's empty value, never an error.
"""

import dataclasses
import os

import numpy as np

import contract
from datasets import history as history_lib
from pipeline.scoring.record import cell
from pipeline.server.requests import Parsed


def _needed(spec) -> list[str]:
    """The columns the store reads of a row: the time, the key, each entry's entity and value."""
    names = [spec.time, *([spec.key] if spec.key else [])]
    for item in spec.history:
        names += [item.entity] + ([item.value] if item.value else [])
    return list(dict.fromkeys(names))


def _from_features(parsed: Parsed, spec, key: str | None) -> list[dict]:
    rows = [{} for _ in range(parsed.rows)]
    for name in _needed(spec):
        column = parsed.inputs.get(name)
        if column is None:
            continue
        for row, value in zip(rows, column):
            value = cell(value)
            if value is not None:
                row[name] = value
    if parsed.keys is not None and key == spec.key:
        for row, value in zip(rows, parsed.keys):
            if value is not None:
                row[spec.key] = value
    return rows


# bench/history_serve.py's reference: the store's work skipped, every row served the empty windows (what a request
# costs without the lookup, on the same server and model). Never set in production: the scores would be wrong.
SKIP_LOOKUP = os.environ.get("FRAUD_PIPELINE_NO_HISTORY_LOOKUP") == "1"


class _Skipped:
    """The store as the reference measurement sees it: nothing written, empty windows."""

    def __init__(self, spec):
        self.spec = spec

    def serve(self, rows) -> list[dict]:
        empty = {}
        for item in self.spec.history:
            empty.update(history_lib.missing(item))
        return [dict(empty) for _ in rows]


def with_history(loaded, parsed: Parsed) -> Parsed:
    """The request with each row's history features (the request as it was when the version has none)."""
    store, spec = loaded.store, loaded.spec
    if store is None:
        return parsed
    if SKIP_LOOKUP:
        store = _Skipped(spec)
    if parsed.signature == contract.SERVING_SIGNATURE:
        import tensorflow as tf

        examples = [tf.train.Example.FromString(raw) for raw in parsed.inputs[contract.SERVING_INPUT]]
        rows = []
        for example in examples:
            feature, row = example.features.feature, {}
            for name in _needed(spec):
                if name in feature:
                    f = feature[name]
                    values = list(f.float_list.value) or list(f.int64_list.value) or list(f.bytes_list.value)
                    if values and cell(values[0]) is not None:
                        row[name] = cell(values[0])
            rows.append(row)
        served = store.serve(rows)
        for example, values in zip(examples, served):
            for name, value in values.items():
                column = example.features.feature[name].float_list.value
                del column[:]
                column.append(value)
        serialized = [e.SerializeToString(deterministic=True) for e in examples]
        return dataclasses.replace(parsed, inputs={contract.SERVING_INPUT: serialized})
    rows = _from_features(parsed, spec, loaded.reader.key)
    served = store.serve(rows)
    inputs = dict(parsed.inputs)
    for name in loaded.reader.computed:
        inputs[name] = np.array([values[name] for values in served], dtype=np.float32)
    return dataclasses.replace(parsed, inputs=inputs, matrix=None)
