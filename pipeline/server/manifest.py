"""A KServe InferenceService that runs this model server as a custom predictor from the pipeline's image.

The image (Dockerfile) holds the serving environment at /opt/serve (requirements-serve.lock with the project); KServe's
storage initializer downloads STORAGE_URI (the output folder: serving/ within it) to /mnt/models before the container
starts, and the container serves from there on port 8080 with the probes KServe expects. Plain data, no KServe import:
`fraud-pipeline serve --manifest` writes it from the main environment, and tests/test_server_e2e.py reads it back
with the kserve SDK's own models.
"""

import json

import contract

PORT = 8080
MODELS_DIR = "/mnt/models"
SERVE_PYTHON = "/opt/serve/bin/python"


def inference_service_dict(image: str, storage_uri: str, server_args: list[str], name: str = "fraud") -> dict:
    """The InferenceService as a dict (serving.kserve.io/v1beta1).

    Args:
      image: the pipeline's image.
      storage_uri: the output folder on object storage (gs://, s3://, pvc://...).
      server_args: the server's flags as `fraud-pipeline serve` passes them; --output, --host and --port are set
        here for the pod.
    """
    kept, skip = [], {"--output", "--host", "--port"}
    i = 0
    while i < len(server_args):
        if server_args[i] in skip:
            i += 2
            continue
        kept.append(server_args[i])
        i += 1
    args = [
        "--output",
        MODELS_DIR,
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--model-name",
        contract.SERVING_MODEL_NAME,
    ]
    probe = {"httpGet": {"path": "/v2/health/ready", "port": PORT}, "periodSeconds": 5}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": image,
                        "command": [SERVE_PYTHON, "-m", "pipeline.server"],
                        "args": args + kept,
                        "env": [{"name": "STORAGE_URI", "value": storage_uri}],
                        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                        "readinessProbe": probe,
                        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": PORT}, "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
                    }
                ],
            }
        },
    }


def inference_service(image: str, storage_uri: str, server_args: list[str], name: str = "fraud") -> str:
    """The InferenceService as YAML (JSON is YAML: kubectl apply -f takes it)."""
    return json.dumps(inference_service_dict(image, storage_uri, server_args, name), indent=2) + "\n"
