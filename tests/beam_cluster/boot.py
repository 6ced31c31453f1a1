"""A Python stand-in for the Beam SDK container's boot program, for SDK workers on this machine.

Beam's Python containers start workers through `/opt/apache/beam/boot` (Go, sdks/python/container/boot.go): it asks
the runner's provision service for the pipeline options and the job's staged artifacts, fetches them from the
artifact service, pip-installs them (requirements.txt, the --extra_package list, then workflow.tar.gz, the sdist
that --setup_file builds) and only then starts `python -m apache_beam.runners.worker.sdk_worker_main`. Python's own
worker pool (`apache_beam.runners.worker.worker_pool_main`) skips all of that unless it is given such a
program as --container_executable. No container engine runs here, so this file plays boot's part, with the same
command line, the same steps in the same order and the same pip commands, in the Python environment it runs in.

It imports only Beam and gRPC: it runs in a worker environment where this project is not installed.
"""

import argparse
import fcntl
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from apache_beam.portability import common_urns
from apache_beam.portability.api import (
    beam_artifact_api_pb2,
    beam_artifact_api_pb2_grpc,
    beam_provision_api_pb2,
    beam_provision_api_pb2_grpc,
    beam_runner_api_pb2,
    endpoints_pb2,
)
from google.protobuf import json_format, text_format

# The names Beam's stager gives what it stages (apache_beam/runners/portability/stager.py), as boot.go reads them.
REQUIREMENTS_FILE = "requirements.txt"
EXTRA_PACKAGES_FILE = "extra_packages.txt"
WORKFLOW_FILE = "workflow.tar.gz"
# Set by boot --worker_pool: the workers of one pool install the staged files once.
WORKER_POOL_ID_ENV = "BEAM_PYTHON_WORKER_POOL_ID"
PIP = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]

log = logging.getLogger("boot")


def _staged_name(dependency: beam_runner_api_pb2.ArtifactInformation) -> str:
    if dependency.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
        raise ValueError(f"an artifact without a staged name: {dependency.role_urn}")
    return beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload).staged_name


def materialize(endpoint: str, dependencies, folder: Path) -> list[str]:
    """Fetches every staged artifact into folder; returns their staged names."""
    folder.mkdir(parents=True, exist_ok=True)
    stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(grpc.insecure_channel(endpoint))
    names = []
    for dependency in dependencies:
        name = _staged_name(dependency)
        with open(folder / name, "wb") as out:
            for chunk in stub.GetArtifact(beam_artifact_api_pb2.GetArtifactRequest(artifact=dependency)):
                out.write(chunk.data)
        log.info("retrieved %s (%d bytes)", name, (folder / name).stat().st_size)
        names.append(name)
    return names


def _pip(*args: str) -> None:
    log.info("pip install %s", " ".join(args))
    subprocess.run(PIP + list(args), check=True, stdout=sys.stderr)


def install(names: list[str], folder: Path) -> None:
    """What boot.go's installSetupPackages does with the staged files, in its order."""
    if REQUIREMENTS_FILE in names:
        requirements = str(folder / REQUIREMENTS_FILE)
        # First only what was staged, then the rest from the package index.
        subprocess.run(PIP + ["-r", requirements, "--no-index", "--no-deps", "--find-links", str(folder)])
        _pip("-r", requirements, "--find-links", str(folder))
    if EXTRA_PACKAGES_FILE in names:
        for package in (folder / EXTRA_PACKAGES_FILE).read_text().split():
            # The package itself even when its version is installed, then whatever it needs that is missing.
            _pip("--upgrade", "--force-reinstall", "--no-deps", str(folder / package))
            _pip(str(folder / package))
    if WORKFLOW_FILE in names:
        _pip(str(folder / WORKFLOW_FILE))


def _once(action, semi_persist_dir: Path) -> None:
    """Runs action once per worker pool (boot.go's multiProcessExactlyOnce), or every time outside a pool."""
    pool = os.environ.get(WORKER_POOL_ID_ENV)
    if not pool:
        action()
        return
    done = Path(tempfile.gettempdir()) / f"beam.install.complete.{pool}"
    with open(f"{done}.lck", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            action()
            done.touch()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="boot %(asctime)s %(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser()
    for name in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint", "control_endpoint"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--semi_persist_dir", default=tempfile.gettempdir())
    args = parser.parse_args()

    # (1) The pipeline options and the job's dependencies, asked for as this worker.
    provision = beam_provision_api_pb2_grpc.ProvisionServiceStub(grpc.insecure_channel(args.provision_endpoint))
    info = provision.GetProvisionInfo(
        beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", args.id)]
    ).info

    # (2) Retrieve and install the staged packages.
    semi_persist_dir = Path(args.semi_persist_dir)
    staged = semi_persist_dir / "staged"

    def materialize_and_install():
        install(materialize(args.artifact_endpoint, info.dependencies, staged), staged)

    _once(materialize_and_install, semi_persist_dir)

    # (3) The SDK harness, configured through the environment as boot.go does.
    def descriptor(url: str) -> str:
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

    env = dict(
        os.environ,
        WORKER_ID=args.id,
        PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
        SEMI_PERSISTENT_DIRECTORY=str(semi_persist_dir),
        LOGGING_API_SERVICE_DESCRIPTOR=descriptor(args.logging_endpoint),
        CONTROL_API_SERVICE_DESCRIPTOR=descriptor(args.control_endpoint),
    )
    if info.HasField("status_endpoint"):
        env["STATUS_API_SERVICE_DESCRIPTOR"] = text_format.MessageToString(info.status_endpoint)
    log.info("starting the SDK harness for %s", args.id)
    os.execve(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"], env)


if __name__ == "__main__":
    main()
