"""Submits a compiled spec: to Vertex AI Pipelines with aiplatform's PipelineJob, or to Kubeflow Pipelines with kfp.

Failures that users meet (no credentials, a host that does not answer, an HTTP error) come out as SubmitError
with one sentence that says what to do.
"""

import dataclasses
import os
import tempfile

import requests

from pipeline.runners import kfp_backend
from pipeline.runners.spec_io import pipeline_spec, read_spec, write_spec


class SubmitError(Exception):
    """Submission failed; the message is one sentence for the user."""


@dataclasses.dataclass
class Submitted:
    """A started run."""

    run_id: str
    url: str


def parse_params(pairs: list[str], spec: dict) -> dict:
    """--param k=v pairs as a dict; the names must be parameters the spec declares."""
    declared = pipeline_spec(spec)["root"].get("inputDefinitions", {}).get("parameters", {})
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SubmitError(f"--param {pair}: expected NAME=VALUE")
        if name not in declared:
            raise SubmitError(
                f"--param {name}: the pipeline declares no such parameter (it has: {', '.join(declared)})"
            )
        params[name] = value
    return params


def submit_kubeflow(spec_path: str, host: str, params: dict, run_name: str, experiment: str, token=None) -> Submitted:
    """Uploads the spec to a Kubeflow Pipelines API and starts a run with the given parameters.

    The run request carries the spec's pipeline root: the backend takes it from the request only (without it, the
    cluster's default minio:// root, which TFX's executors cannot write to).

    Raises:
      kfp_backend.UnsupportedSpecError: the spec holds what the open-source backend cannot run (e.g. a Vertex
        PipelineJob); nothing is sent.
      SubmitError: the API cannot be reached or refuses the run.
    """
    import kfp
    import kfp_server_api

    spec = pipeline_spec(read_spec(spec_path))
    kfp_backend.check(spec)
    host = host.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # One quick request first: the kfp client retries its health check for half a minute before failing.
    try:
        response = requests.get(f"{host}/apis/v2beta1/healthz", headers=headers, timeout=15)
    except requests.RequestException as e:
        raise SubmitError(f"cannot reach the Kubeflow Pipelines API at {host}: {type(e).__name__}") from e
    if response.status_code in (401, 403):
        raise SubmitError(
            f"the Kubeflow Pipelines API at {host} refused the request (HTTP {response.status_code}); "
            "give a valid token (--token-file, or FRAUD_PIPELINE_KFP_TOKEN) or sign in to the cluster"
        )
    with tempfile.TemporaryDirectory() as tmp:
        package = os.path.join(tmp, "pipeline.yaml")
        write_spec(spec, package)
        try:
            client = kfp.Client(host=host, existing_token=token)
            result = client.create_run_from_pipeline_package(
                package,
                arguments=params,
                run_name=run_name,
                experiment_name=experiment,
                pipeline_root=spec.get("defaultPipelineRoot"),
            )
        except kfp_server_api.ApiException as e:
            raise SubmitError(
                f"the Kubeflow Pipelines API at {host} answered HTTP {e.status} {e.reason}".rstrip()
            ) from e
        except (requests.RequestException, OSError) as e:
            raise SubmitError(f"cannot reach the Kubeflow Pipelines API at {host}: {type(e).__name__}") from e
    return Submitted(run_id=result.run_id, url=f"{host}/#/runs/details/{result.run_id}")


def vertex_job(spec_path: str, project: str, region: str, params: dict, pipeline_root=None, credentials=None):
    """The aiplatform PipelineJob for a compiled spec (built locally; nothing is sent)."""
    from google.auth import exceptions as auth_exceptions
    from google.cloud import aiplatform

    spec = read_spec(spec_path)
    try:
        return aiplatform.PipelineJob(
            display_name=spec.get("displayName") or pipeline_spec(spec)["pipelineInfo"]["name"],
            template_path=spec_path,
            pipeline_root=pipeline_root,
            parameter_values=params,
            project=project,
            location=region,
            credentials=credentials,
        )
    except auth_exceptions.DefaultCredentialsError as e:
        raise SubmitError(
            "no Google Cloud credentials found: run 'gcloud auth application-default login' "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
        ) from e


def submit_vertex(spec_path: str, project: str, region: str, params: dict, service_account=None) -> Submitted:
    """Starts a Vertex AI Pipelines run of the compiled spec."""
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    job = vertex_job(spec_path, project, region, params)
    try:
        job.submit(service_account=service_account)
    except auth_exceptions.GoogleAuthError as e:
        raise SubmitError(f"Google Cloud refused the credentials: {e}".splitlines()[0]) from e
    except api_exceptions.GoogleAPIError as e:
        raise SubmitError(f"Vertex AI refused the pipeline run: {e}".splitlines()[0]) from e
    url = f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/{job.name}?project={project}"
    return Submitted(run_id=job.resource_name, url=url)
