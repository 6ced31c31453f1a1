"""create_pipeline: the one pipeline definition that every runner (local, Kubeflow, Vertex) uses."""

import dataclasses
import json
from typing import NamedTuple

from google.protobuf import text_format
from tfx.components.example_validator.component import ExampleValidator
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.components.trainer.component import Trainer
from tfx.components.tuner.component import Tuner
from tfx.orchestration import data_types
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import distribution_validator_pb2, trainer_pb2, transform_pb2

import contract
from components.anomalies_gate.component import AnomaliesGate
from components.distribution_validator.component import DistributionValidator
from components.evaluator.component import Evaluator
from components.example_gen.component import CsvExampleGen, CsvExampleGenTask
from components.pusher.component import Pusher
from components.serving_baseline.component import ServingBaseline
from components.statistics_gen.component import StatisticsGen
from components.transform.component import Transform
from pipeline.definition import config as cfg
from pipeline.definition import metadata as metadata_lib
from pipeline.definition.config import DATA_ROOT_PARAMETER, PipelineConfig
from pipeline.definition.eval_config import eval_config
from trainer.hparams import CANDIDATES

# tfx_bsl's TFXIO sources, which StatisticsGen, Transform and the Evaluator read through, batch 1 -> 1,000 rows as
# Beam tunes it, or with this absl flag a fixed 8,192 (20 MiB). Transform's per-batch work (decoding, one call of
# the graph) then costs less for a little more memory; the Evaluator would hold much more for nothing measurable
# (docs/benchmarks.md).
BYTE_SIZE_BATCHING = "tfxio_use_byte_size_batching"


def _batching(config: PipelineConfig, on: bool) -> list[str]:
    """The flag for one component, unless the user's Beam args set it. TFX parses each Beam component's args into
    absl's process-wide flags, so in a local run a value would carry on to the components after it: every
    component that reads through TFXIO states its own. In absl's own boolean forms, without a value: a Kubeflow
    container's entrypoint parses its arguments with absl's argparse, which refuses `--flag=false`."""
    if any(BYTE_SIZE_BATCHING in arg for arg in config.beam_pipeline_args):
        return []
    return [f"--{'' if on else 'no'}{BYTE_SIZE_BATCHING}"]


def _serving_baseline(config: PipelineConfig, example_gen):
    """The model serving now (unless it is this run's own model), to compare the new one with; none on a first run."""
    return ServingBaseline(
        examples=example_gen.outputs["examples"],
        serving_dir=config.serving_dir,
        training_config=config.training_config(),
        baseline_key=config.baseline_key,
        code_version=config.code_version(cfg.SERVING_BASELINE),
        **({"dataset": config.dataset_json()} if config.dataset_json() else {}),
    ).with_id(cfg.SERVING_BASELINE)


class Upstream(NamedTuple):
    """Ingest, validation and Transform, shared by the pipeline and the comparison pipeline."""

    example_gen: object
    transform: object
    # Every component of ingest, validation and Transform, in order.
    components: list
    statistics_gen: object
    distribution_validator: object


def _upstream(config: PipelineConfig) -> Upstream:
    """Ingest, validation and Transform (Upstream)."""
    data_root = (
        data_types.RuntimeParameter(name=DATA_ROOT_PARAMETER, ptype=str, default=config.data_root)
        if config.runtime_data_root
        else config.data_root
    )
    reader = CsvExampleGen if config.example_gen_driver else CsvExampleGenTask
    example_gen = reader(
        input_base=data_root,
        input_pattern=config.data_pattern,
        split=config.split,
        code_version=config.code_version(cfg.EXAMPLE_GEN),
        span_pattern=config.span_pattern,
        window=config.window,
        dataset=config.dataset_json(),
    )
    schema_importer = ImportSchemaGen(schema_file=config.schema_path)
    # TFX's StatisticsGen, computed in process on the in-process runner when that gives TFX's statistics
    # (components/statistics_gen/component.py); the batching flag is for TFX's Beam executor, which runs otherwise.
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"],
        schema=schema_importer.outputs["schema"],
        code_version=config.code_version(cfg.STATISTICS_GEN),
    ).with_beam_pipeline_args(_batching(config, False))
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_importer.outputs["schema"]
    )
    # Skew (test split vs train split) on every run, drift (newest span vs previous) with spans; both from the one
    # StatisticsGen output, against the dataset spec's drift thresholds.
    pairs = [contract.SKEW_PAIR] + ([contract.DRIFT_PAIR] if config.span_pattern else [])
    distribution_validator = DistributionValidator(
        statistics=statistics_gen.outputs["statistics"],
        baseline_statistics=statistics_gen.outputs["statistics"],
        config=text_format.Parse(config.drift_config, distribution_validator_pb2.DistributionValidatorConfig()),
        include_split_pairs=pairs,
    ).with_id(cfg.DISTRIBUTION_VALIDATOR)
    gate = AnomaliesGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        drift_anomalies=distribution_validator.outputs["anomalies"],
        **config.data_minimums.to_dict(),
        accept_drift=config.accept_drift,
        code_version=config.code_version(cfg.GATE),
        **({"label": config.dataset.label} if config.dataset_json() else {}),
    )

    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_importer.outputs["schema"],
        preprocessing_fn=cfg.PREPROCESSING_FN,
        # Statistics (mean, standard deviation) come from the train split only. Transform writes its graph and no
        # transformed examples: the Trainer and the Tuner read ExampleGen's train and eval splits through the graph
        # in memory, as the Evaluator and serving do (the same values to the bit, faster: docs/benchmarks.md).
        splits_config=transform_pb2.SplitsConfig(analyze=[contract.TRAIN_SPLIT]),
        materialize=False,
        # StatisticsGen has described the raw data already and nothing reads statistics of the transformed data;
        # TFDV's pre- and post-transform statistics cost time for nothing (docs/benchmarks.md, the levers table).
        disable_statistics=True,
        # The analyzer cache is written on every run and never read: its key hashes a file pattern holding the
        # ExampleGen execution's URI, new on every run (docs/benchmarks.md, the levers table).
        disable_analyzer_cache=True,
        custom_config={"code_version": config.code_version(cfg.TRANSFORM), **config.dataset_config()},
    ).with_beam_pipeline_args(_batching(config, True))
    # Validation is a gate: Transform, and so everything after it, waits for it to pass.
    transform.add_upstream_node(gate)
    components = [
        example_gen,
        schema_importer,
        statistics_gen,
        example_validator,
        distribution_validator,
        gate,
        transform,
    ]
    return Upstream(example_gen, transform, components, statistics_gen, distribution_validator)


def _tuner(config: PipelineConfig, example_gen, transform) -> Tuner:
    """KerasTuner's search on the eval split (trainer.task.tuner_fn); its trials train as the Trainer does."""
    return Tuner(
        tuner_fn=cfg.TUNER_FN,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        train_args=trainer_pb2.TrainArgs(splits=[contract.TRAIN_SPLIT]),
        eval_args=trainer_pb2.EvalArgs(splits=[contract.EVAL_SPLIT]),
        custom_config={
            "hparams": config.hparams.to_dict(),
            "max_trials": config.tune_trials,
            "code_version": config.code_version(cfg.TUNER),
            **config.dataset_config(),
        },
    )


def _trainer(config: PipelineConfig, example_gen, transform, hparams, tuner=None) -> Trainer:
    return Trainer(
        run_fn=cfg.RUN_FN,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner is not None else None,
        train_args=trainer_pb2.TrainArgs(splits=[contract.TRAIN_SPLIT]),
        eval_args=trainer_pb2.EvalArgs(splits=[contract.EVAL_SPLIT]),
        custom_config={
            "hparams": hparams.to_dict(),
            "threshold_policy": config.threshold_policy.to_dict(),
            "code_version": config.code_version(cfg.TRAINER),
            **config.dataset_config(),
        },
    )


def _evaluator(config: PipelineConfig, example_gen, trainer, baseline=None) -> Evaluator:
    return Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline"] if baseline is not None else None,
        example_splits=[contract.TEST_SPLIT],
        eval_config=eval_config(config.gates, config.dataset),
    ).with_beam_pipeline_args(_batching(config, False))


def _pipeline(config: PipelineConfig, components: list) -> Pipeline:
    # A shared store's password is not in the pipeline (libpq reads it: pipeline.definition.metadata).
    metadata = None
    if config.metadata_path:
        metadata = metadata_lib.connection_config(config.metadata_path, with_password=False)
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )


def create_pipeline(config: PipelineConfig) -> Pipeline:
    """Builds the TFX pipeline from its config; reads no environment, file or clock."""
    up = _upstream(config)
    example_gen, transform, components = up.example_gen, up.transform, up.components
    tuner = _tuner(config, example_gen, transform) if config.tune_trials else None
    trainer = _trainer(config, example_gen, transform, config.hparams, tuner)
    baseline = _serving_baseline(config, example_gen)
    # The baseline is read once the model is trained, so it is the model serving when the comparison is made.
    baseline.add_upstream_node(trainer)
    evaluator = _evaluator(config, example_gen, trainer, baseline)
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        serving_dir=config.serving_dir,
        code_version=config.code_version(cfg.PUSHER),
        examples=example_gen.outputs["examples"],
        training_config=config.training_config(),
        gates=json.dumps(dataclasses.asdict(config.gates), sort_keys=True),
        statistics=up.statistics_gen.outputs["statistics"],
        evaluation=evaluator.outputs["evaluation"],
        drift_anomalies=up.distribution_validator.outputs["anomalies"],
    )
    tuning = [tuner] if tuner is not None else []
    return _pipeline(config, components + tuning + [trainer, baseline, evaluator, pusher])


def create_compare_pipeline(config: PipelineConfig, candidates: tuple[str, ...]) -> Pipeline:
    """One ingest, validation and Transform, then a Trainer and an Evaluator per candidate; nothing is pushed.

    A candidate is an imbalance strategy or a model option (trainer.hparams.CANDIDATES): its change to
    config.hparams. Each Evaluator applies the value gates only (there is no baseline here), so its blessing says
    whether that candidate's model would be blessed on a first run.
    """
    up = _upstream(config)
    example_gen, transform, components = up.example_gen, up.transform, list(up.components)
    for candidate in candidates:
        trainer_id, evaluator_id = cfg.compare_node_ids(candidate)
        hparams = dataclasses.replace(config.hparams, **CANDIDATES[candidate])
        trainer = _trainer(config, example_gen, transform, hparams).with_id(trainer_id)
        evaluator = _evaluator(config, example_gen, trainer).with_id(evaluator_id)
        components += [trainer, evaluator]
    return _pipeline(config, components)
