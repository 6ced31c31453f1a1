"""create_pipeline: the one pipeline definition that every runner (local, Kubeflow, Vertex) uses."""

from tfx import v1 as tfx

from components.anomalies_gate import AnomaliesGate
from components.example_gen import CsvExampleGen
from pipeline.config import PipelineConfig


def create_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline from its config; reads no environment, file or clock."""
    example_gen = CsvExampleGen(input_base=config.data_root, input_pattern=config.data_pattern, split=config.split)
    schema_importer = tfx.components.ImportSchemaGen(schema_file=config.schema_path)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_importer.outputs["schema"]
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_importer.outputs["schema"]
    )
    gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])

    components = [example_gen, schema_importer, statistics_gen, example_validator, gate]
    metadata = (
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
        if config.metadata_path
        else None
    )
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
