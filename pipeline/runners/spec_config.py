"""The PipelineConfig a compiled spec was built from, read back from its tasks' parameters (no TFX needed).

`fraud-pipeline rehearse` writes the same summary.json as `run`, and the summary reads the run's settings (split,
window, data minimums, hyperparameters, threshold policy, gates, push destination) from the config: here they come
from what the spec will really hand its tasks, so the rehearsal reports what ran, not what was meant.
"""

import json

from datasets import spec as dataset_spec
from pipeline.definition import config as cfg
from pipeline.definition.config import PipelineConfig
from pipeline.definition.gates import DataMinimums, GateConfig
from pipeline.runners.spec_io import pipeline_spec
from trainer.hparams import HParams, ThresholdPolicy

# TFX's own container arguments before the Beam arguments (step_builder._build_container_spec).
_TFX_ARGS_WITH_VALUES = (
    "--executor_class_path",
    "--json_serialized_invocation_args",
    "--json_serialized_inputs_spec_args",
)


def constant(value: dict):
    """A task parameter's compiled constant: schema 2.1 `constant`, or schema 2.0 `constantValue`."""
    runtime = value["runtimeValue"]
    if "constant" in runtime:
        return runtime["constant"]
    legacy = runtime["constantValue"]
    if "intValue" in legacy:
        return int(legacy["intValue"])
    if "doubleValue" in legacy:
        return float(legacy["doubleValue"])
    return legacy.get("stringValue", "")


def task_parameters(spec: dict, task: str) -> dict:
    """The compiled constants of a task's parameters (those given from the pipeline's inputs are left out)."""
    params = pipeline_spec(spec)["root"]["dag"]["tasks"][task]["inputs"].get("parameters", {})
    return {name: constant(value) for name, value in params.items() if "runtimeValue" in value}


def beam_args(container_args: list[str]) -> list[str]:
    """The Beam arguments of a compiled container: what follows TFX's own arguments."""
    out, skip = [], False
    for arg in container_args:
        if skip:
            skip = False
        elif arg in _TFX_ARGS_WITH_VALUES:
            skip = True
        else:
            out.append(arg)
    return out


def _gates(eval_config: dict) -> GateConfig:
    values = {}
    for metrics_spec in eval_config["metrics_specs"]:
        for metric in metrics_spec["metrics"]:
            config = json.loads(metric.get("config") or "{}")
            thresholds = metric.get("per_slice_thresholds") or []
            if not thresholds:
                continue
            threshold = thresholds[0]["threshold"]
            floor = threshold["value_threshold"]["lower_bound"]
            drop = -threshold["change_threshold"]["absolute"]
            # By the metric's name (pipeline.definition.eval_config's PR_AUC, RECALL_AT_PRECISION; not imported, it
            # loads TFMA):
            # its class is TFMA's or the project's (compat.tfma).
            if config.get("name") == "pr_auc":
                values.update(min_pr_auc=floor, max_pr_auc_drop=drop)
            elif config.get("name") == "recall_at_precision":
                values.update(min_recall_at_precision=floor, max_recall_drop=drop, at_precision=config["precision"])
    return GateConfig(**values)


def config_of(spec: dict, data_root: str, pipeline_root: str, serving_dir: str) -> PipelineConfig:
    """The config a spec was compiled from, with the given data, pipeline root and push destination.

    Args:
      spec: a compiled spec (a Vertex PipelineJob or a bare PipelineSpec) as a dict.
      data_root: the data folder the run reads (the data_root parameter's value).
      pipeline_root: where the run writes its artifacts.
      serving_dir: where its Pusher pushes.
    """
    body = pipeline_spec(spec)
    tasks = body["root"]["dag"]["tasks"]
    example_gen = task_parameters(spec, cfg.EXAMPLE_GEN)
    custom = json.loads(example_gen["custom_config"])["custom_config"]["value"]
    gate = task_parameters(spec, cfg.GATE)
    trainer = json.loads(task_parameters(spec, cfg.TRAINER)["custom_config"])
    tuner = json.loads(task_parameters(spec, cfg.TUNER)["custom_config"]) if cfg.TUNER in tasks else {}
    pusher = json.loads(task_parameters(spec, cfg.PUSHER)["custom_config"])
    code = {cfg.EXAMPLE_GEN: custom.get("code_version", ""), cfg.GATE: gate.get("code_version", "")}
    code.update({cfg.TRAINER: trainer.get("code_version", ""), cfg.PUSHER: pusher.get("code_version", "")})
    if tuner:
        code[cfg.TUNER] = tuner.get("code_version", "")
    training = json.loads(pusher.get("training_config") or "{}")
    code.update({k: v for k, v in training.get("code", {}).items() if v})
    executor = body["deploymentSpec"]["executors"][f"{cfg.EXAMPLE_GEN}_executor"]["container"]
    return PipelineConfig(
        pipeline_root=pipeline_root,
        serving_dir=serving_dir,
        data_root=data_root,
        data_pattern=json.loads(example_gen["input_config"])["splits"][0]["pattern"],
        schema_path=task_parameters(spec, cfg.SCHEMA_IMPORTER)["schema_file"],
        split=custom.get("split", "time"),
        beam_pipeline_args=tuple(beam_args(executor.get("args", []))),
        pipeline_name=body["pipelineInfo"]["name"],
        hparams=HParams(**trainer["hparams"]),
        tune_trials=int(tuner.get("max_trials", 0)),
        threshold_policy=ThresholdPolicy.from_dict(trainer["threshold_policy"]),
        gates=_gates(json.loads(task_parameters(spec, cfg.EVALUATOR)["eval_config"])),
        data_minimums=DataMinimums(**{f: int(gate[f]) for f in DataMinimums.__dataclass_fields__ if f in gate}),
        example_gen_driver=False,
        runtime_data_root=True,
        span_pattern=custom.get("span_pattern", ""),
        window=int(custom.get("window", 0)),
        accept_drift=bool(gate.get("accept_drift", False)),
        # The Trainer's custom config carries the spec (none: the default one).
        dataset=dataset_spec.of_config(trainer),
        code_versions=code,
        schema_fingerprint=training.get("schema", ""),
    )
