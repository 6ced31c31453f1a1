"""What the rehearsal maps from the image and the cloud onto this machine: object-store URIs, the image's
/pipeline/ and its ENV, `python`, and the Beam arguments that only mean something on Dataflow."""

import dataclasses
import re
import sys
from pathlib import Path

import contract

# The image's ENV (Dockerfile): TFX 1.16 and TF Transform run on Keras 2.
IMAGE_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
IMAGE_PROJECT_DIR = contract.IMAGE_PROJECT_DIR + "/"
_SCHEMES = {"gs://": "gcs", "s3://": "s3"}
_URI = re.compile(r"\b(gs|s3)://")
_IMAGE_PATH = re.compile(r"(?<![\w./-])" + re.escape(IMAGE_PROJECT_DIR))
# Beam arguments that only mean something on Dataflow: dropped with --runner=DataflowRunner.
DATAFLOW_ONLY = (
    "--runner",
    "--project",
    "--region",
    "--temp_location",
    "--staging_location",
    "--sdk_container_image",
    "--service_account_email",
    "--network",
    "--subnetwork",
    "--machine_type",
    "--worker_machine_type",
    "--num_workers",
    "--max_num_workers",
    "--autoscaling_algorithm",
    "--dataflow_service_options",
    "--experiments",
    "--setup_file",
    "--job_server_timeout",
)
# Vertex AI's resource names, as in TFX's test data.


class RehearsalError(Exception):
    """The spec cannot be rehearsed here; the message says why and what to do."""


@dataclasses.dataclass
class Mapping:
    """How the cloud and the image are laid onto this machine."""

    root: Path
    checkout: Path
    python: str = sys.executable

    def text(self, value: str) -> str:
        """Any string the spec hands a task, with object-store URIs and image paths made local."""
        value = _URI.sub(lambda m: f"{self.root}/{_SCHEMES[m.group(0)]}/", value)
        return _IMAGE_PATH.sub(f"{self.checkout}/", value)

    def value(self, value):
        """A parameter value (a JSON value) with its strings mapped."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


def map_beam_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(the Beam arguments a local task gets, the ones dropped): Dataflow's are dropped (the direct runner runs
    the job); a portable runner's cluster is refused."""
    runner = next((a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "")
    if runner.lower().removesuffix("runner") in ("flink", "spark", "portable", "prism"):
        raise RehearsalError(
            f"the spec runs Beam on {runner}, a cluster this rehearsal does not start; compile the spec without "
            "--beam-arg=--runner=... to rehearse it (a local portable cluster is proven by `fraud-pipeline run`)"
        )
    if runner.lower().removesuffix("runner") != "dataflow":
        return list(args), []
    kept = [a for a in args if a.split("=", 1)[0] not in DATAFLOW_ONLY]
    return kept, [a for a in args if a not in kept]
