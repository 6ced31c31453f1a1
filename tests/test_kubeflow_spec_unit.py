"""Kubeflow V2 / Vertex: the compiled specs against the local pipeline and against what the open-source Kubeflow
Pipelines backend implements."""

import json
import subprocess

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.definition import config as cfg
from pipeline.definition.config import DATA_ROOT_PARAMETER, PipelineConfig
from pipeline.runners import kfp_backend
from pipeline.runners.container_entrypoint import COMMAND
from pipeline.runners.kubeflow import UNCACHED_TASKS
from tests.support import ALL_COMPONENTS, BEAM_ARGS, CLI, DATA_URI, IMAGE, ROOT_URI, compile_spec

BEAM_COMPONENTS = {cfg.EXAMPLE_GEN, cfg.STATISTICS_GEN, cfg.TRANSFORM, cfg.EVALUATOR}


def _spec(compiled, target) -> pipeline_spec_pb2.PipelineSpec:
    with open(compiled[target]) as f:
        doc = json.load(f) if target == "vertex" else yaml.safe_load(f)
    return json_format.ParseDict(doc.get("pipelineSpec", doc), pipeline_spec_pb2.PipelineSpec())


def _local_dependencies() -> dict:
    """Component id -> ids it depends on, in the pipeline create_pipeline builds for Kubeflow."""
    from pipeline.definition.pipeline import create_pipeline  # TFX: only in the tests that build the pipeline

    config = PipelineConfig(
        pipeline_root=ROOT_URI,
        serving_dir=ROOT_URI + "/serving",
        data_root=DATA_URI,
        data_pattern="*.csv*",
        schema_path="/pipeline/schema.pbtxt",
        example_gen_driver=False,
        runtime_data_root=True,
    )
    return {c.id: {u.id for u in c.upstream_nodes} for c in create_pipeline(config).components}


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_spec_holds_the_local_pipeline(target, compiled):
    spec = _spec(compiled, target)
    tasks = spec.root.dag.tasks
    assert set(tasks) == ALL_COMPONENTS
    local = _local_dependencies()
    for name, task in tasks.items():
        assert set(task.dependent_tasks) == local[name], name
    for name, executor in spec.deployment_spec.fields["executors"].struct_value.fields.items():
        container = executor.struct_value.fields.get("container")
        if container is not None:
            assert container.struct_value.fields["image"].string_value == IMAGE, name


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_data_root_is_a_runtime_parameter(target, compiled):
    parameter = _spec(compiled, target).root.input_definitions.parameters[DATA_ROOT_PARAMETER]
    assert parameter.default_value.string_value == DATA_URI.rstrip("/")
    example_gen = _spec(compiled, target).root.dag.tasks["CsvExampleGen"]
    assert example_gen.inputs.parameters["input_base"].component_input_parameter == DATA_ROOT_PARAMETER
    if target == "vertex":
        job = json.loads(compiled["vertex"].read_text())
        assert job["runtimeConfig"]["gcsOutputDirectory"] == ROOT_URI
        assert job["runtimeConfig"]["parameters"][DATA_ROOT_PARAMETER] == {"stringValue": DATA_URI.rstrip("/")}


def _container_args(spec: pipeline_spec_pb2.PipelineSpec) -> dict[str, list[str]]:
    """Component id -> its container's arguments in the spec."""
    args_of = {}
    for name, executor in spec.deployment_spec.fields["executors"].struct_value.fields.items():
        container = executor.struct_value.fields.get("container")
        if container is not None:
            values = container.struct_value.fields["args"].list_value.values
            args_of[name.removesuffix("_executor")] = [v.string_value for v in values]
    # Every Beam-based component has a container executor in the spec (a renamed one fails here).
    assert BEAM_COMPONENTS <= set(args_of), set(args_of)
    return args_of


def test_dataflow_workers_get_the_beam_args_and_the_pipeline_image(compiled):
    args_of = _container_args(_spec(compiled, "vertex"))
    # Kubeflow V2 hands each Beam component every Beam arg, and the workers run the pipeline image, which
    # has the project: compile adds it, since nothing in the given args ships the project's code.
    expected = BEAM_ARGS + (f"--sdk_container_image={IMAGE}",)
    for component in BEAM_COMPONENTS:
        missing = [a for a in expected if a not in args_of[component]]
        assert missing == [], component


def test_transform_batches_by_bytes_and_the_others_say_they_do_not_unless_the_user_chose(compiled, tmp_path):
    flag, off = "--tfxio_use_byte_size_batching", "--notfxio_use_byte_size_batching"
    args_of = _container_args(_spec(compiled, "vertex"))
    assert flag in args_of[cfg.TRANSFORM] and off not in args_of[cfg.TRANSFORM]
    for component in (cfg.STATISTICS_GEN, cfg.EVALUATOR):
        assert off in args_of[component] and flag not in args_of[component], component
    # The user's value reaches every component, and none of the project's then follows it to override it.
    chosen = compile_spec(tmp_path / "chosen.json", "vertex", beam_args=(*BEAM_ARGS, off))
    for component, args in _container_args(_spec({"vertex": chosen}, "vertex")).items():
        assert [a for a in args if "tfxio_use_byte_size_batching" in a] in ([], [off]), component


def test_flink_workers_get_the_pipeline_image_or_the_source(tmp_path):
    def compiled_with(name: str, *beam_args: str) -> dict[str, list[str]]:
        path = compile_spec(tmp_path / name, "kubeflow", beam_args=("--runner=FlinkRunner", *beam_args))
        return _container_args(_spec({"kubeflow": path}, "kubeflow"))

    docker = compiled_with("docker.yaml", "--flink_master=flink:8081")
    # An external worker pool (a Flink task manager's sidecar) installs the source the image holds.
    pool = compiled_with("pool.yaml", "--environment_type=EXTERNAL", "--environment_config=localhost:50000")
    for component in BEAM_COMPONENTS:
        assert f"--environment_config={IMAGE}" in docker[component], component
        assert "--setup_file=/pipeline/setup.py" in pool[component], component
        assert "--job_server_timeout=86400" in docker[component] and "--job_server_timeout=86400" in pool[component]


def test_compile_time_options_are_in_the_spec(compiled):
    trainer = _spec(compiled, "kubeflow").root.dag.tasks["Trainer"]
    custom = trainer.inputs.parameters["custom_config"].runtime_value.constant.string_value
    assert json.loads(custom)["hparams"]["max_epochs"] == 7


def test_compile_refuses_a_local_pipeline_root(tmp_path):
    proc = subprocess.run(
        [str(CLI), "compile", "--target", "vertex", "--image", IMAGE, "--pipeline-root", str(tmp_path)]
        + ["--data", DATA_URI, "--output", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--pipeline-root" in proc.stderr


def _parameter(task, name: str) -> str:
    return task.inputs.parameters[name].runtime_value.constant_value.string_value


def test_the_compiled_spec_carries_the_drift_gate_and_the_span_window(tmp_path):
    spans_uri = "gs://demo-bucket/fraud/spans/span-{SPAN}/*.csv.gz"
    path = compile_spec(tmp_path / "spans.json", "vertex", "--window", "3", data=spans_uri)
    spec = _spec({"vertex": path}, "vertex")
    tasks = spec.root.dag.tasks
    validator = tasks[cfg.DISTRIBUTION_VALIDATOR]
    config = json.loads(_parameter(validator, "distribution_validator_config"))
    thresholds = {f["path"]["step"][0]: f["distributionComparator"] for f in config["defaultSliceConfig"]["feature"]}
    assert thresholds["V1"]["jensenShannonDivergence"]["threshold"] == 0.5
    assert "infinityNorm" in thresholds["Class"]
    assert json.loads(_parameter(validator, "include_split_pairs")) == [
        ["test", "train"],
        ["span_newest", "span_previous"],
    ]
    # The gate waits for the validator, and Transform for the gate.
    assert cfg.DISTRIBUTION_VALIDATOR in tasks[cfg.GATE].dependent_tasks
    assert cfg.GATE in tasks[cfg.TRANSFORM].dependent_tasks
    # The Trainer reads ExampleGen's examples through Transform's graph; Transform materializes no examples.
    trainer_inputs = tasks[cfg.TRAINER].inputs.artifacts
    assert trainer_inputs["examples"].task_output_artifact.producer_task == cfg.EXAMPLE_GEN
    assert trainer_inputs["transform_graph"].task_output_artifact.producer_task == cfg.TRANSFORM
    assert set(spec.components[tasks[cfg.TRANSFORM].component_ref.name].output_definitions.artifacts) == {
        "transform_graph"
    }
    example_gen = tasks[cfg.EXAMPLE_GEN]
    custom = json.loads(_parameter(example_gen, "custom_config"))["custom_config"]["value"]
    assert custom["span_pattern"] == "span-{SPAN}/*.csv.gz" and custom["window"] == 3
    assert json.loads(_parameter(example_gen, "input_config"))["splits"][0]["pattern"] == "span-*/*.csv.gz"
    assert spec.root.input_definitions.parameters[DATA_ROOT_PARAMETER].default_value.string_value == (
        "gs://demo-bucket/fraud/spans"
    )


def _doc(compiled, target) -> dict:
    with open(compiled[target]) as f:
        doc = json.load(f) if target == "vertex" else yaml.safe_load(f)
    return doc.get("pipelineSpec", doc)


def _walk(value):
    """Every (key, value) pair in a nested JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def test_the_kubeflow_spec_holds_only_what_the_open_source_backend_runs(compiled):
    doc = _doc(compiled, "kubeflow")
    assert doc["schemaVersion"] == "2.1.0"
    assert kfp_backend.problems(doc) == []
    keys = {k for k, _ in _walk(doc)}
    # The constructs the backend refuses, looked for directly as well as through the checker.
    assert "constantValue" not in keys and "lifecycle" not in keys
    executor_kinds = {kind for executor in doc["deploymentSpec"]["executors"].values() for kind in executor}
    assert executor_kinds == {"container"}
    # The backend takes the pipeline root from the run request; submit reads it from here.
    assert doc["defaultPipelineRoot"] == ROOT_URI


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_every_task_runs_the_project_entrypoint_and_the_file_readers_are_not_cached(target, compiled):
    doc = _doc(compiled, target)
    for name, executor in doc["deploymentSpec"]["executors"].items():
        assert executor["container"]["command"] == COMMAND, name
    for name, task in doc["root"]["dag"]["tasks"].items():
        cached = task.get("cachingOptions", {}).get("enableCache", False)
        assert cached == (name not in UNCACHED_TASKS), name


def test_the_checker_names_what_the_backend_cannot_run():
    spec = {
        "root": {
            "inputDefinitions": {"parameters": {"data_root": {"type": "STRING"}}},
            "dag": {
                "tasks": {
                    "A": {"inputs": {"parameters": {"p": {"runtimeValue": {"constantValue": {"stringValue": "x"}}}}}},
                    "B": {"inputs": {"parameters": {"q": {"runtimeValue": {"constant": "x"}}}}},
                }
            },
        },
        "deploymentSpec": {
            "executors": {
                "A_executor": {"container": {"image": "i", "lifecycle": {"preCacheCheck": {"command": ["x"]}}}},
                "R_executor": {"resolver": {"outputArtifactQueries": {}}},
                "B_executor": {"container": {"image": "i"}},
            }
        },
    }
    found = kfp_backend.problems(spec)
    assert len(found) == 4, found
    assert any("data_root has no parameterType" in p for p in found)
    assert any("task A: parameter p is a constantValue" in p for p in found)
    assert any("A_executor: a lifecycle.preCacheCheck hook" in p for p in found)
    assert any("R_executor: a resolver executor" in p for p in found)
    with pytest.raises(kfp_backend.UnsupportedSpecError, match="resolver executors not implemented"):
        kfp_backend.check(spec)


def test_compile_refuses_a_minio_pipeline_root(tmp_path):
    proc = subprocess.run(
        [str(CLI), "compile", "--target", "kubeflow", "--image", IMAGE, "--pipeline-root", "minio://mlpipeline/v2"]
        + ["--data", DATA_URI, "--output", str(tmp_path / "x.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "minio://" in proc.stderr and not (tmp_path / "x.yaml").exists()
