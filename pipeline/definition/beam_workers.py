"""Beam workers that can import the project: the arguments a non-local Beam runner needs, added or asked for.

Beam pickles the pipeline's own DoFns and functions by reference (the custom CsvExampleGen's, the Transform
module's), so a worker that has not got this project installed fails on its first bundle with
`ModuleNotFoundError: No module named 'components'`. On the in-process direct runner the workers are this process
and nothing needs shipping. Any other runner gets one of Beam's two ways to ship code:

- the pipeline image as the workers' container (the Dockerfile: TFX 1.16, the pinned set, this project and Beam's
  SDK boot as its entrypoint): `--sdk_container_image=IMAGE` on Dataflow, `--environment_config=IMAGE` with the
  portable runner's DOCKER environment (Flink, Spark). Workers start with everything installed, at the versions
  the pipeline was tested with. `compile` always has the image (`--image`), so compiled pipelines use it;
- the project's source as a package (`--setup_file=PATH/setup.py`): Beam builds an sdist and stages it, and each
  worker's boot pip-installs it with its pinned dependencies (tfx==1.16.0, apache-beam==2.59.0,
  tensorflow==2.16.2) before its first bundle. `run` has no image, so it stages the source it runs from.

Where the workers' environment has the project already (a PROCESS command or an EXTERNAL worker pool on the
pipeline image, such as pipeline/runners/worker_pool.py), the user says so (`--beam-workers-installed`) and nothing
is staged. Whatever the user gave that already ships the code is kept as it is. Portable runners also get a job server
timeout that lets a job run longer than a minute (JOB_SERVER_TIMEOUT).
"""

import dataclasses
import socket

from compat import tfx as tfx_compat

LOCAL_RUNNERS = frozenset({"direct", "bundlebaseddirect", "switchingdirect", "interactive"})
# Beam flags that put the project on the workers, by runner family.
DATAFLOW_SHIPPING = ("sdk_container_image", "setup_file", "extra_package", "extra_packages")
PORTABLE_SHIPPING = ("setup_file", "extra_package", "extra_packages")
# Dataflow needs these to start a job; missing, it fails only once ExampleGen has started.
DATAFLOW_REQUIRED = ("project", "region", "temp_location")
# Beam 2.59's portable runner opens the job's message stream with --job_server_timeout as its deadline (default
# 60 s), so the pipeline gives up on any job that runs longer than that, although the job goes on and succeeds
# (found by bench/distributed.py: docs/benchmarks.md, "Distributed Beam"). A day leaves room for big data.
JOB_SERVER_TIMEOUT = "--job_server_timeout=86400"


# Options of Beam's Java job server that Beam's Python SDK does not declare (declare_job_server_options).
JOB_SERVER_OPTIONS = {
    # Beam's PipelineResourcesOptions: the class (on the job server's class path) that finds the jars the job server
    # sends with each job; by default its whole class path, which a Flink job server uploads to the JobManager before
    # every job. A cluster whose JobManager and TaskManagers have Beam's runner on their own class path needs none
    # of it (docs/distributed-beam.md, "Jars").
    "pipeline_resources_detector_factory_class": "the job server's PipelineResourcesDetector.Factory class",
}
_declared: list = []


def declare_job_server_options() -> None:
    """Declares JOB_SERVER_OPTIONS to Beam, once a process: the portable runner sends the job server only the
    options some PipelineOptions class declares (the others are dropped with a warning), and Beam collects every
    subclass. Beam is imported here rather than with this module: the command line starts without it."""
    if _declared:
        return
    from apache_beam.options.pipeline_options import PipelineOptions

    class JobServerOptions(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            for name, help_text in JOB_SERVER_OPTIONS.items():
                parser.add_argument(f"--{name}", default=None, help=help_text)

    _declared.append(JobServerOptions)


class WorkerCodeError(ValueError):
    """The Beam arguments cannot run the project's code on the runner's workers; the message says what to add."""


@dataclasses.dataclass(frozen=True)
class Shipping:
    """The Beam arguments to use and, of those, the ones added here."""

    args: tuple[str, ...]
    added: tuple[str, ...] = ()


def options(args) -> dict[str, str]:
    """--name=value and --name value pairs of a Beam argument list, by name (the last one wins)."""
    found: dict[str, str] = {}
    items = list(args)
    for index, arg in enumerate(items):
        if not arg.startswith("--"):
            continue
        name, sep, value = arg[2:].partition("=")
        if not sep:
            following = items[index + 1] if index + 1 < len(items) else None
            value = following if following is not None and not following.startswith("--") else ""
        found[name] = value
    return found


def runner_family(runner: str | None) -> str:
    """'local', 'dataflow' or 'portable' (Flink, Spark, Prism, a job endpoint) for a --runner value."""
    if not runner:
        return "local"
    name = runner.rsplit(".", 1)[-1].lower().removesuffix("runner")
    if name in LOCAL_RUNNERS:
        return "local"
    return "dataflow" if "dataflow" in name else "portable"


def _needs(what: str, runner: str) -> WorkerCodeError:
    return WorkerCodeError(
        f"--beam-arg=--runner={runner} runs the Beam components on workers that must import this project; {what}"
    )


def ship(args, *, image: str | None = None, setup_file: str | None = None, installed: bool = False) -> Shipping:
    """The Beam args with what the runner's workers need to run the project's code.

    image: the pipeline image (compile's --image), preferred; setup_file: the project's setup.py where this
    process runs from its source; installed: the user says the workers' environment has the project already (a
    portable runner's PROCESS command or worker pool on an image of it), so nothing is staged. Raises
    WorkerCodeError when none of them is there and the args ship nothing.
    """
    args = tuple(args)
    given = options(args)
    runner = given.get("runner")
    family = runner_family(runner)
    if family == "local":
        return Shipping(args)
    declare_job_server_options()
    if family == "dataflow":
        missing = [f"--beam-arg=--{name}=..." for name in DATAFLOW_REQUIRED if not given.get(name)]
        if missing:
            raise WorkerCodeError(f"--beam-arg=--runner={runner} also needs {' '.join(missing)}")
        if not given["temp_location"].startswith("gs://"):
            raise WorkerCodeError(f"--beam-arg=--temp_location={given['temp_location']}: Dataflow needs a gs:// folder")
        if any(given.get(name) for name in DATAFLOW_SHIPPING):
            return Shipping(args)
        if image:
            return _add(args, f"--sdk_container_image={image}")
        if setup_file:
            return _add(args, f"--setup_file={setup_file}")
        raise _needs(
            "add --beam-arg=--sdk_container_image=IMAGE (the pipeline image built from the Dockerfile) or "
            "--beam-arg=--setup_file=PATH/setup.py (this project's source)",
            runner,
        )
    timeout = () if "job_server_timeout" in given else (JOB_SERVER_TIMEOUT,)
    environment = (given.get("environment_type") or "DOCKER").upper()
    if environment == "LOOPBACK" or any(given.get(name) for name in PORTABLE_SHIPPING):
        return _add(args, *timeout)  # LOOPBACK: the workers are this process.
    if installed and environment != "DOCKER":
        return _add(args, *timeout)  # PROCESS or EXTERNAL: the command or the pool has the project.
    if environment == "DOCKER":
        # Portable runners take the container from --environment_config; they ignore --sdk_container_image.
        if given.get("environment_config"):
            return _add(args, *timeout)
        container = given.get("sdk_container_image") or image
        if container:
            return _add(args, f"--environment_config={container}", *timeout)
    if installed:
        raise _needs(
            "--beam-workers-installed with a DOCKER environment: name the image, --environment_config=IMAGE", runner
        )
    if setup_file:
        return _add(args, f"--setup_file={setup_file}", *timeout)
    raise _needs(
        "add --beam-arg=--environment_config=IMAGE (the pipeline image, with --environment_type=DOCKER) or "
        "--beam-arg=--setup_file=PATH/setup.py (this project's source, installed by each worker's boot)",
        runner,
    )


def _add(args: tuple[str, ...], *added: str) -> Shipping:
    return Shipping(args + added, added)


def answers(endpoint: str, seconds: float = 5.0) -> bool:
    """Whether something accepts a connection at HOST:PORT (a job endpoint), within seconds."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=seconds):
            return True
    except (OSError, ValueError):
        return False


def no_tfx_package() -> None:
    """TFX's Beam executors package TFX's own install for remote workers whenever their Beam args name none of
    --setup_file, --extra_packages or --sdk_container_image (a copy of its folder and `setup.py sdist` in a
    subprocess for each Beam component, a temporary folder left behind each time, and each worker's boot installs
    it). This project never needs it: on a local runner the workers are this process or its children, and on any
    other one `ship` has made sure the workers get TFX 1.16.0 with the project (the image has it, the staged
    project's setup.py pins it, or the user says the workers' environment has it). So this process skips it
    (compat/tfx.py) on every runner. Idempotent."""
    tfx_compat.skip_dependency_packaging(lambda args: True)
