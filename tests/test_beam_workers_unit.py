"""Which Beam arguments ship the project to a runner's workers (pipeline.definition.beam_workers), and the CLI's usage
errors."""

import re
import subprocess
import sys

import pytest

from pipeline.definition import beam_workers as bw
from pipeline.definition.fingerprint import PACKAGES
from tests.support import CLI, ROOT

DATAFLOW = ("--runner=DataflowRunner", "--project=p", "--region=europe-west4", "--temp_location=gs://b/tmp")
IMAGE = "europe-docker.pkg.dev/p/r/fraud-pipeline:1"
SETUP = "/src/fraud/setup.py"


@pytest.mark.parametrize(
    "args",
    [(), ("--direct_num_workers=2",), ("--runner=DirectRunner",), ("--runner", "BundleBasedDirectRunner")],
)
def test_local_runners_are_left_alone(args):
    assert bw.ship(args, image=IMAGE, setup_file=SETUP) == bw.Shipping(args)


def test_dataflow_gets_the_pipeline_image_first_then_the_source():
    assert bw.ship(DATAFLOW, image=IMAGE, setup_file=SETUP).added == (f"--sdk_container_image={IMAGE}",)
    shipped = bw.ship(DATAFLOW, setup_file=SETUP)
    assert shipped.added == (f"--setup_file={SETUP}",)
    assert shipped.args == DATAFLOW + shipped.added


@pytest.mark.parametrize(
    "given", ["--sdk_container_image=my/image:2", "--setup_file=/other/setup.py", "--extra_package=dist/f.whl"]
)
def test_what_the_user_ships_is_kept(given):
    args = DATAFLOW + (given,)
    assert bw.ship(args, image=IMAGE, setup_file=SETUP) == bw.Shipping(args)


def test_dataflow_with_nothing_to_ship_says_what_to_add():
    with pytest.raises(bw.WorkerCodeError, match="--sdk_container_image=IMAGE.*--setup_file=PATH/setup.py"):
        bw.ship(DATAFLOW)


def test_dataflow_names_the_options_it_lacks():
    with pytest.raises(bw.WorkerCodeError, match=r"--region=\.\.\. --beam-arg=--temp_location=\.\.\.$"):
        bw.ship(("--runner=DataflowRunner", "--project=p"), image=IMAGE)
    with pytest.raises(bw.WorkerCodeError, match="gs://"):
        bw.ship(DATAFLOW[:3] + ("--temp_location=/tmp",), image=IMAGE)


def test_runner_names_as_beam_takes_them():
    assert bw.runner_family("apache_beam.runners.dataflow.dataflow_runner.DataflowRunner") == "dataflow"
    assert bw.runner_family("dataflow") == "dataflow"
    assert bw.runner_family("FlinkRunner") == bw.runner_family("PortableRunner") == "portable"
    assert bw.runner_family("direct") == bw.runner_family(None) == "local"
    # Two-token form, and the last of a repeated flag wins, as in Beam's own parser.
    assert bw.options(["--runner", "SparkRunner", "--runner=FlinkRunner", "--streaming"]) == {
        "runner": "FlinkRunner",
        "streaming": "",
    }


def test_portable_docker_workers_run_the_image():
    flink = ("--runner=FlinkRunner", "--flink_master=host:8081")
    timeout = bw.JOB_SERVER_TIMEOUT
    assert bw.ship(flink, image=IMAGE, setup_file=SETUP).added == (f"--environment_config={IMAGE}", timeout)
    # Portable runners ignore --sdk_container_image: it becomes the DOCKER environment's image.
    mine = bw.ship(flink + ("--sdk_container_image=mine:1",), image=IMAGE)
    assert mine.added == ("--environment_config=mine:1", timeout)
    given = flink + ("--environment_type=DOCKER", "--environment_config=mine:1", "--job_server_timeout=600")
    assert bw.ship(given, image=IMAGE) == bw.Shipping(given)


def test_portable_external_workers_install_the_source():
    external = ("--runner=PortableRunner", "--job_endpoint=h:8099", "--environment_type=EXTERNAL")
    shipped = bw.ship(external, image=IMAGE, setup_file=SETUP)
    assert shipped.added == (f"--setup_file={SETUP}", bw.JOB_SERVER_TIMEOUT)
    with pytest.raises(bw.WorkerCodeError, match="--setup_file"):
        bw.ship(external, image=IMAGE)
    loopback = ("--runner=PortableRunner", "--job_endpoint=h:8099", "--environment_type=LOOPBACK")
    assert bw.ship(loopback).added == (bw.JOB_SERVER_TIMEOUT,)


def test_workers_whose_environment_has_the_project_get_nothing_staged():
    process = ("--runner=PortableRunner", "--job_endpoint=h:8099", "--environment_type=PROCESS")
    external = process[:2] + ("--environment_type=EXTERNAL", "--environment_config=localhost:50000")
    for args in (process + ('--environment_config={"command": "/opt/apache/beam/boot"}',), external):
        assert bw.ship(args, setup_file=SETUP, installed=True).added == (bw.JOB_SERVER_TIMEOUT,)
        assert bw.ship(args, setup_file=SETUP).added == (f"--setup_file={SETUP}", bw.JOB_SERVER_TIMEOUT)
    # A DOCKER environment has the project only through an image of it: the stock Beam container has not.
    docker = process[:2]
    assert bw.ship(docker, image=IMAGE, installed=True).added == (
        f"--environment_config={IMAGE}",
        bw.JOB_SERVER_TIMEOUT,
    )
    with pytest.raises(bw.WorkerCodeError, match="--beam-workers-installed with a DOCKER environment"):
        bw.ship(docker, setup_file=SETUP, installed=True)


def test_a_job_endpoint_that_answers():
    import socket

    with socket.socket() as server:
        server.bind(("localhost", 0))
        server.listen()
        port = server.getsockname()[1]
        assert bw.answers(f"localhost:{port}")
    assert not bw.answers(f"localhost:{port}", seconds=1)
    assert not bw.answers("no-port")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=120)


def test_a_local_run_refuses_dataflow_and_says_to_compile(tmp_path):
    proc = _cli("run", "--output", str(tmp_path), *(f"--beam-arg={a}" for a in DATAFLOW))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot read --data or write --output" in proc.stderr and "compile --target vertex" in proc.stderr
    assert not (tmp_path / "summary.json").exists()


def test_a_local_run_refuses_a_job_endpoint_nobody_answers(tmp_path):
    portable = ("--runner=PortableRunner", "--job_endpoint=localhost:1", "--environment_type=EXTERNAL")
    proc = _cli("run", "--output", str(tmp_path), *(f"--beam-arg={a}" for a in portable))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--job_endpoint=localhost:1: no job service answers there" in proc.stderr


def test_compile_stops_a_dataflow_job_that_could_not_start(tmp_path):
    target = (
        "compile",
        "--target",
        "vertex",
        "--image",
        IMAGE,
        "--pipeline-root",
        "gs://b/root",
        "--data",
        "gs://b/d/",
    )
    proc = _cli(*target, "--output", str(tmp_path / "f.json"), "--beam-arg=--runner=DataflowRunner")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--project=... --beam-arg=--region=... --beam-arg=--temp_location=..." in proc.stderr
    assert not (tmp_path / "f.json").exists()


def test_the_image_boots_beam_workers_of_the_pinned_beam():
    """Dataflow and DOCKER environments start the image's entrypoint: Beam's boot, of the Beam the lock pins."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r"^apache-beam==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M).group(1)
    python = re.search(r'python_requires=">=(3\.\d+),', (ROOT / "setup.py").read_text()).group(1)
    assert f"FROM apache/beam_python{python}_sdk:{pinned} AS beam" in dockerfile
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in dockerfile
    assert dockerfile.rstrip().endswith('ENTRYPOINT ["/opt/apache/beam/boot"]')
    # The project's setup.py is where compile's --setup_file (for external worker pools) points in the image.
    assert "WORKDIR /pipeline" in dockerfile and "COPY requirements.lock setup.py ./" in dockerfile


def test_the_shipped_package_holds_every_package_of_the_project():
    """--setup_file ships what setup.py lists: a subpackage it leaves out is missing on every remote worker."""
    from setuptools import find_namespace_packages

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import distutils.core, sys; d = distutils.core.run_setup(sys.argv[1], stop_after='init');"
            "print(' '.join(d.packages)); print(' '.join(d.py_modules))",
            str(ROOT / "setup.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    packages, modules = set(out[0].split()), set(out[1].split())
    on_disk = {
        p
        for p in find_namespace_packages(str(ROOT), include=[f"{name}*" for name in PACKAGES if name != "contract"])
        if (ROOT / p.replace(".", "/") / "__init__.py").exists()
    }
    assert "components.example_gen" in on_disk and "pipeline.cli" in on_disk
    assert packages == on_disk
    assert modules == {"contract"}


def test_tfx_never_packages_itself_since_the_project_ships_it(monkeypatch):
    from tfx.utils import dependency_utils

    from components.statistics_gen.component import Executor

    built = []
    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags", dependency_utils.make_beam_dependency_flags)
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", lambda: built.append(1) or "/tmp/tfx.tar.gz")

    def executor_args(*args: str) -> list[str]:
        return Executor(Executor.Context(beam_pipeline_args=list(args)))._beam_pipeline_args

    remote = ("--runner=PortableRunner", "--job_endpoint=localhost:1")
    package = "--extra_package=/tmp/tfx.tar.gz"
    assert package in executor_args(*remote)  # TFX's own way
    assert len(built) == 1
    bw.no_tfx_package()
    bw.no_tfx_package()  # twice: still one wrapper
    assert package not in executor_args("--notfxio_use_byte_size_batching")
    assert package not in executor_args("--runner=DirectRunner", "--direct_num_workers=2")
    assert not [a for a in executor_args(*remote, "--environment_type=PROCESS") if "extra_package" in a]
    assert len(built) == 1


def test_the_job_servers_own_options_reach_it_once_a_portable_run_is_shipped():
    """Beam's portable runner sends the job server only declared options: the jar detector's (docs/distributed-beam.md,
    "Jars") is declared by ship() for a non-local runner, in the process that then builds the Beam pipelines."""
    code = """
from apache_beam.options.pipeline_options import PipelineOptions
from pipeline.definition import beam_workers as bw
args = ["--runner=PortableRunner", "--job_endpoint=h:8099", "--environment_type=LOOPBACK"]
args += ["--pipeline_resources_detector_factory_class=a.B"]
sent = lambda: PipelineOptions(args).get_all_options(retain_unknown_options=False)
print(sent().get("pipeline_resources_detector_factory_class"))
bw.ship(args, installed=True)
print(sent().get("pipeline_resources_detector_factory_class"))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["None", "a.B"]  # dropped before, sent after
