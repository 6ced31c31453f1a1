"""The pushed model as TF Serving gets it: loaded in a fresh process with no project code, its signatures, and its
warm-up requests (real raw examples of the eval split) replayed through serving_default."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import contract
from tests.support import raw_examples

# Run in a fresh interpreter, outside the project, without Keras 2 switched on: what a model server has.
RELOAD = r"""
import json, sys
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

model_dir, warmup_file = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(model_dir)
spec = lambda s: [s.dtype.name, s.shape.as_list()]
signatures = {
    name: {
        "inputs": {k: spec(v) for k, v in fn.structured_input_signature[1].items()},
        "outputs": {k: spec(v) for k, v in fn.structured_outputs.items()},
    }
    for name, fn in loaded.signatures.items()
}
replies = []
for raw in tf.data.TFRecordDataset(warmup_file):
    request = prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.request
    fn = loaded.signatures[request.model_spec.signature_name]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    outputs = fn(**inputs)
    replies.append({
        "model": request.model_spec.name,
        "signature": request.model_spec.signature_name,
        "examples": [e.hex() for e in inputs["examples"].numpy()] if "examples" in inputs else None,
        "rows": len(next(iter(inputs.values())).numpy()),
        "inputs": sorted(inputs),
        "outputs": {k: [v.dtype.name, v.numpy().tolist()] for k, v in outputs.items()},
    })
project = {"contract", "components", "trainer", "transform", "pipeline"}
print(json.dumps({
    "signatures": signatures,
    "replies": replies,
    "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in project),
}))
"""


@pytest.fixture(scope="module")
def reloaded(time_run, tmp_path_factory):
    model = time_run.summary["pushed_model"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run(
        [sys.executable, "-c", RELOAD, model, os.path.join(model, contract.WARMUP_REQUESTS)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path_factory.mktemp("elsewhere"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
def test_the_pushed_model_loads_without_the_project_with_its_signatures(reloaded):
    assert reloaded["project_modules"] == []
    signatures = reloaded["signatures"]
    assert signatures[contract.SERVING_SIGNATURE] == {
        "inputs": {contract.SERVING_INPUT: ["string", [None]]},
        "outputs": {
            contract.PROBABILITY_OUTPUT: ["float32", [None, 1]],
            contract.DECISION_OUTPUT: ["int64", [None, 1]],
        },
    }
    # The raw features by name (TF Serving's JSON REST API), the label not among them.
    by_name = signatures[contract.FEATURES_SIGNATURE]
    assert by_name["inputs"] == {name: ["float32", [None]] for name in contract.RAW_FLOAT_FEATURES}
    assert by_name["outputs"] == signatures[contract.SERVING_SIGNATURE]["outputs"]
    transformed = signatures[contract.TRANSFORMED_FEATURES_SIGNATURE]
    assert transformed["inputs"] == {contract.SERVING_INPUT: ["string", [None]]}
    assert set(contract.MODEL_INPUTS) | set(contract.SLICE_FEATURES) <= set(transformed["outputs"])


@pytest.mark.e2e
def test_the_warm_up_requests_are_real_eval_rows_and_replay_as_served(time_run, reloaded):
    import tensorflow as tf

    # The examples signature's requests, then the same rows by name on the raw-features signature (every raw
    # feature but the label), each with the scores of the examples signature.
    replies = reloaded["replies"]
    assert [(r["signature"], r["rows"]) for r in replies] == [
        (signature, n) for signature in (contract.SERVING_SIGNATURE, contract.FEATURES_SIGNATURE) for n in (1, 8, 64)
    ]
    assert {r["model"] for r in replies} == {contract.SERVING_MODEL_NAME}
    assert replies[-1]["inputs"] == sorted(contract.RAW_FLOAT_FEATURES)
    # The eval split's first rows as ExampleGen wrote them, the label taken off: what a client sends.
    eval_rows = raw_examples(time_run, contract.WARMUP_SPLIT)[:64]
    sent = [tf.train.Example.FromString(bytes.fromhex(e)) for e in replies[2]["examples"]]
    for record, example in zip(eval_rows, sent, strict=True):
        expected = tf.train.Example.FromString(record)
        del expected.features.feature[contract.LABEL]
        assert example == expected
    # Each reply is what the serving signature gives those rows in this process, at the model's threshold.
    serve = tf.saved_model.load(time_run.summary["pushed_model"]).signatures[contract.SERVING_SIGNATURE]
    expected = serve(**{contract.SERVING_INPUT: tf.constant(eval_rows)})
    threshold = json.loads((open(os.path.join(time_run.summary["pushed_model"], contract.OPERATING_THRESHOLD))).read())
    for reply in replies:
        n = reply["rows"]
        dtype, probability = reply["outputs"][contract.PROBABILITY_OUTPUT]
        assert dtype == "float32" and np.shape(probability) == (n, 1)
        np.testing.assert_allclose(
            np.ravel(probability), expected[contract.PROBABILITY_OUTPUT].numpy().ravel()[:n], rtol=0, atol=1e-6
        )
        dtype, decision = reply["outputs"][contract.DECISION_OUTPUT]
        assert dtype == "int64"
        assert np.ravel(decision).tolist() == (np.ravel(probability) >= np.float32(threshold["threshold"])).tolist()
