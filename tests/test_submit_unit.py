"""Submission without a cloud: the real kfp client against a stand-in KFP REST API on 127.0.0.1, and Vertex's
PipelineJob built from the compiled file."""

import http.server
import json
import os
import socket
import subprocess
import threading

import pytest
import yaml

from pipeline.definition.config import DATA_ROOT_PARAMETER
from tests.support import CLI, ROOT_URI

NEW_DATA = "gs://demo-bucket/fraud/next-month"


class _KfpApi(http.server.BaseHTTPRequestHandler):
    """Answers the few KFP v2beta1 endpoints a run submission uses; records what it was sent."""

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.authorizations.append(self.headers.get("Authorization"))
        if self.server.deny:
            return self._reply(401, {"error": "Unauthorized", "code": 16})
        if self.path.startswith("/apis/v2beta1/healthz"):
            return self._reply(200, {"multi_user": False})
        if self.path.startswith("/apis/v2beta1/experiments"):
            return self._reply(200, {})
        self._reply(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        if self.server.deny:
            return self._reply(401, {"error": "Unauthorized", "code": 16})
        body = self._body()
        self.server.received.append((self.path, body))
        if self.path == "/apis/v2beta1/experiments":
            return self._reply(200, {"experiment_id": "exp-1", "display_name": body.get("display_name")})
        if self.path == "/apis/v2beta1/runs":
            return self._reply(200, {"run_id": "run-42", "display_name": body.get("display_name"), "state": "PENDING"})
        self._reply(404, {"error": "not found"})

    def log_message(self, *args):
        pass


@pytest.fixture
def kfp_api():
    """A stand-in KFP API on a free loopback port; set .deny to answer 401."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KfpApi)
    server.received, server.deny, server.authorizations = [], False, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _submit(*args, env=None):
    return subprocess.run([str(CLI), "submit", *args], capture_output=True, text=True, timeout=120, env=env)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kubeflow_submit_uploads_the_spec_with_the_parameters_and_the_pipeline_root(compiled, kfp_api):
    target = "kubeflow"
    host = f"http://127.0.0.1:{kfp_api.server_port}"
    proc = _submit(
        str(compiled[target]), "--target", "kubeflow", "--host", host, "--param", f"{DATA_ROOT_PARAMETER}={NEW_DATA}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run id: run-42" in proc.stdout and f"run URL: {host}/#/runs/details/run-42" in proc.stdout
    runs = [body for path, body in kfp_api.received if path == "/apis/v2beta1/runs"]
    assert len(runs) == 1
    with open(compiled[target]) as f:
        spec = yaml.safe_load(f)
    assert runs[0]["pipeline_spec"] == spec.get("pipelineSpec", spec)
    assert runs[0]["runtime_config"]["parameters"] == {DATA_ROOT_PARAMETER: NEW_DATA}
    # The backend writes where the run request says, not where the spec does (else: the cluster's minio:// root).
    assert runs[0]["runtime_config"]["pipeline_root"] == ROOT_URI
    assert runs[0]["experiment_id"] == "exp-1"


def test_a_vertex_job_is_not_sent_to_kubeflow(compiled, kfp_api):
    host = f"http://127.0.0.1:{kfp_api.server_port}"
    proc = _submit(str(compiled["vertex"]), "--target", "kubeflow", "--host", host)
    assert proc.returncode == 2 and "open-source Kubeflow Pipelines backend cannot run" in proc.stderr
    assert "constantValue" in proc.stderr and kfp_api.received == []


def test_kubeflow_submit_to_a_refused_port_is_one_clear_error(compiled):
    host = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    proc = _submit(str(compiled["kubeflow"]), "--target", "kubeflow", "--host", host)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"fraud-pipeline: cannot reach the Kubeflow Pipelines API at {host}: ConnectionError"]


def test_kubeflow_submit_unauthorized_is_one_clear_error(compiled, kfp_api):
    kfp_api.deny = True
    proc = _submit(
        str(compiled["kubeflow"]), "--target", "kubeflow", "--host", f"http://127.0.0.1:{kfp_api.server_port}"
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0] and "--token" in lines[0]


def test_unknown_parameter_is_refused(compiled, kfp_api):
    host = f"http://127.0.0.1:{kfp_api.server_port}"
    proc = _submit(str(compiled["kubeflow"]), "--target", "kubeflow", "--host", host, "--param", "epochs=3")
    assert proc.returncode == 1 and "no such parameter" in proc.stderr
    assert kfp_api.received == []


def test_vertex_job_is_built_from_the_compiled_file(compiled):
    from google.auth.credentials import AnonymousCredentials

    from pipeline.runners.submit import vertex_job

    job = vertex_job(
        str(compiled["vertex"]),
        "demo",
        "europe-west4",
        {DATA_ROOT_PARAMETER: NEW_DATA},
        credentials=AnonymousCredentials(),
    )
    # Before submission the request exists only as the job's private proto; the public property needs a server.
    resource = job._gca_resource
    assert resource.runtime_config.gcs_output_directory == ROOT_URI
    assert resource.runtime_config.parameters[DATA_ROOT_PARAMETER].string_value == NEW_DATA
    assert resource.pipeline_spec["pipelineInfo"]["name"] == "fraud-detection"
    assert job.location == "europe-west4" and job.project == "demo"


@pytest.mark.slow
def test_vertex_submit_without_credentials_is_one_clear_error(compiled, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(HOME=str(tmp_path), GCE_METADATA_HOST="127.0.0.1:1", GCE_METADATA_IP="127.0.0.1:1", NO_GCE_CHECK="True")
    proc = _submit(
        str(compiled["vertex"]), "--target", "vertex", "--project", "demo", "--region", "europe-west4", env=env
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Google Cloud credentials" in lines[0]


def test_submit_needs_its_target_flags(compiled):
    proc = _submit(str(compiled["vertex"]), "--target", "vertex")
    assert proc.returncode == 2 and "--project and --region" in proc.stderr


TOKEN = "s3cret-token-value-do-not-print"


def test_a_token_on_the_command_line_is_refused_without_echoing_it(compiled):
    proc = _submit(str(compiled["kubeflow"]), "--target", "kubeflow", "--host", "http://127.0.0.1:1", "--token", TOKEN)
    assert proc.returncode == 2
    assert "--token-file" in proc.stderr and "FRAUD_PIPELINE_KFP_TOKEN" in proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout


@pytest.mark.parametrize("source", ["env", "file"])
def test_the_token_reaches_the_api_and_never_an_error_message(source, compiled, kfp_api, tmp_path):
    host = f"http://127.0.0.1:{kfp_api.server_port}"
    env = {k: v for k, v in os.environ.items() if k != "FRAUD_PIPELINE_KFP_TOKEN"}
    args = [str(compiled["kubeflow"]), "--target", "kubeflow", "--host", host]
    if source == "env":
        env["FRAUD_PIPELINE_KFP_TOKEN"] = TOKEN
    else:
        (tmp_path / "token").write_text(TOKEN + "\n")
        args += ["--token-file", str(tmp_path / "token")]
    kfp_api.deny = True
    proc = _submit(*args, env=env)
    assert proc.returncode == 1 and "HTTP 401" in proc.stderr
    assert kfp_api.authorizations == [f"Bearer {TOKEN}"]
    assert TOKEN not in proc.stderr + proc.stdout
    # And a host that does not answer.
    refused = _submit(*[a if a != host else f"http://127.0.0.1:{_free_port()}" for a in args], env=env)
    assert refused.returncode == 1 and TOKEN not in refused.stderr + refused.stdout
