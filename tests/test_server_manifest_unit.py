"""`fraud-pipeline serve --manifest`: the KServe InferenceService it writes, read back through the kserve SDK's own
models in the serving environment (no Kubernetes here: docs/serving.md says what this does not prove)."""

import json
import subprocess

from tests.support import CLI, serving_python

SERVE_PYTHON = serving_python()


# In the serving environment: the InferenceService built from the written file with the kserve SDK's own models (and
# Kubernetes' for what they hold: metadata, containers), then serialized again by the SDK; equal to the file when
# every field is one the models know, of the type they take.
READ_BACK = """
import json, sys
from kubernetes.client import ApiClient as Kubernetes
from kserve import ApiClient, V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1PredictorSpec

written = json.load(open(sys.argv[1]))
kubernetes = lambda value, kind: Kubernetes().deserialize(json.dumps(value), kind, "application/json")
predictor = written["spec"]["predictor"]
isvc = V1beta1InferenceService(
    api_version=written["apiVersion"],
    kind=written["kind"],
    metadata=kubernetes(written["metadata"], "V1ObjectMeta"),
    spec=V1beta1InferenceServiceSpec(
        predictor=V1beta1PredictorSpec(
            min_replicas=predictor["minReplicas"],
            containers=[kubernetes(c, "V1Container") for c in predictor["containers"]],
        )
    ),
)
back = ApiClient().sanitize_for_serialization(isvc)
print(json.dumps({"same": back == written, "container": back["spec"]["predictor"]["containers"][0]}))
"""


def test_the_inference_service_reads_back_through_the_kserve_sdk(tmp_path):
    target = tmp_path / "isvc.json"
    proc = subprocess.run(
        [str(CLI), "serve", "--manifest", str(target), "--image", "registry.example/fraud:1",
         "--storage-uri", "gs://bucket/output", "--key", "transaction_id"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([SERVE_PYTHON, "-c", READ_BACK, str(target)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["same"] is True
    container = found["container"]
    assert container["image"] == "registry.example/fraud:1"
    assert container["command"][-2:] == ["-m", "pipeline.server"]
    assert {"name": "STORAGE_URI", "value": "gs://bucket/output"} in container["env"]
    assert container["args"][container["args"].index("--key") + 1] == "transaction_id"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
