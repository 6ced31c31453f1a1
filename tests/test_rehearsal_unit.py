"""The rehearsal's pieces without running a task: mappings, task order, parameters, the entrypoint's type filling,
and the config read back from a compiled spec."""

import json

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.runners import rehearsal
from pipeline.runners.container_entrypoint import fill_input_types
from pipeline.runners.spec_config import config_of
from tests.support import BEAM_ARGS, IMAGE

EXAMPLES_TYPE = {"instanceSchema": "title: tfx.Examples\ntype: object\n"}


def test_cloud_uris_and_the_image_layout_are_mapped_onto_this_machine(tmp_path):
    mapping = rehearsal.Mapping(root=tmp_path / "root", checkout=tmp_path / "src")
    assert mapping.text("gs://bucket/a/b") == f"{tmp_path}/root/gcs/bucket/a/b"
    assert mapping.text("s3://bucket/a") == f"{tmp_path}/root/s3/bucket/a"
    assert mapping.text("/pipeline/schema.pbtxt") == f"{tmp_path}/src/schema.pbtxt"
    assert mapping.text("--setup_file=/pipeline/setup.py") == f"--setup_file={tmp_path}/src/setup.py"
    # Inside JSON text too (a push destination), and nothing else is touched.
    assert (
        mapping.text('{"base_directory": "gs://b/serving"}') == f'{{"base_directory": "{tmp_path}/root/gcs/b/serving"}}'
    )
    assert mapping.text("trainer.task.run_fn") == "trainer.task.run_fn"
    assert mapping.value({"a": ["gs://b/x", 1]}) == {"a": [f"{tmp_path}/root/gcs/b/x", 1]}


def test_dataflow_arguments_are_dropped_and_a_cluster_runner_is_refused():
    kept, dropped = rehearsal.map_beam_args([*BEAM_ARGS, "--direct_num_workers=2"])
    assert kept == ["--direct_num_workers=2"] and dropped == list(BEAM_ARGS)
    assert rehearsal.map_beam_args(["--direct_num_workers=2"]) == (["--direct_num_workers=2"], [])
    with pytest.raises(rehearsal.RehearsalError, match="FlinkRunner"):
        rehearsal.map_beam_args(["--runner=FlinkRunner", "--flink_master=x:8081"])


def test_tasks_run_after_what_they_depend_on():
    tasks = {"c": {"dependentTasks": ["a", "b"]}, "b": {"dependentTasks": ["a"]}, "a": {}, "d": {}}
    assert rehearsal.order(tasks) == ["a", "b", "c", "d"]
    with pytest.raises(rehearsal.RehearsalError, match="cycle"):
        rehearsal.order({"a": {"dependentTasks": ["b"]}, "b": {"dependentTasks": ["a"]}})


def test_root_parameters_come_from_the_run_then_the_job_then_the_spec_defaults():
    spec = {"root": {"inputDefinitions": {"parameters": {"data_root": {"defaultValue": "gs://d"}, "n": {}}}}}
    assert rehearsal.root_parameters(spec, {"n": "1"}) == {"data_root": "gs://d", "n": "1"}
    with pytest.raises(rehearsal.RehearsalError, match="--param n"):
        rehearsal.root_parameters(spec, {})
    with pytest.raises(rehearsal.RehearsalError, match="no such parameter"):
        rehearsal.root_parameters(spec, {"x": "1", "n": "1"})
    job = {"pipelineSpec": spec, "runtimeConfig": {"parameters": {"data_root": {"stringValue": "gs://job"}}}}
    assert rehearsal.root_parameters(job, {"n": "2"}) == {"data_root": "gs://job", "n": "2"}


def test_metadata_reads_back_as_from_kubeflows_ml_metadata():
    back = rehearsal._kfp_metadata_roundtrip({"span": 0, "blessed": True, "split_names": '["a"]', "l": [1]}, "out")
    assert back["span"] == 0 and back["blessed"] == 1.0 and back["split_names"] == '["a"]'
    assert back["l"] == {"list": [1]} and back["display_name"] == "out" and "store_session_info" in back


def test_the_entrypoint_fills_the_types_kubeflow_leaves_out():
    invocation = {
        "inputs": {
            "artifacts": {
                "examples": {"artifacts": [{"name": "7", "uri": "/x", "type": {"instanceSchema": ""}}]},
                "schema": {"artifacts": [{"name": "8", "uri": "/y", "type": {"schemaTitle": "tfx.Schema"}}]},
            }
        }
    }
    inputs_spec = {
        "artifacts": {"examples": {"artifactType": EXAMPLES_TYPE}, "schema": {"artifactType": EXAMPLES_TYPE}}
    }
    filled = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(fill_input_types(json.dumps(invocation), json.dumps(inputs_spec)), filled)
    assert filled.inputs.artifacts["examples"].artifacts[0].type.instance_schema == EXAMPLES_TYPE["instanceSchema"]
    # A type the backend did send is kept.
    assert filled.inputs.artifacts["schema"].artifacts[0].type.schema_title == "tfx.Schema"
    # Without an inputs spec (schema 2.0, Vertex) nothing changes.
    assert fill_input_types(json.dumps(invocation), None) == json.dumps(invocation)


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_the_config_read_back_from_a_spec_is_the_one_compiled(target, compiled):
    spec = yaml.safe_load(compiled[target].read_text())
    config = config_of(spec, "/data", "/root", "/serving")
    assert config.hparams.max_epochs == (7 if target == "kubeflow" else 100)
    assert config.beam_pipeline_args == (*BEAM_ARGS, f"--sdk_container_image={IMAGE}")
    assert config.gates.min_pr_auc == 0.5 and config.gates.max_pr_auc_drop == 0.04
    assert config.gates.at_precision == 0.8 and config.gates.max_recall_drop == 0.05
    assert config.data_minimums.min_train_frauds == 20 and config.split == "time"
    assert config.threshold_policy.kind == "precision" and config.threshold_policy.confidence_z == 1.0
    assert config.pipeline_name == "fraud-detection" and config.serving_dir == "/serving"
    assert set(config.code_versions) >= {"CsvExampleGen", "Transform", "Trainer", "Pusher", "AnomaliesGate"}
