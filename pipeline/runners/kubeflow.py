"""Compiles create_pipeline for Kubeflow Pipelines v2 or Vertex AI Pipelines with KubeflowV2DagRunner (no submission).

Both targets get the same KFP v2 pipeline spec. For Vertex the file is a PipelineJob (the spec under
`pipelineSpec` plus `runtimeConfig` with the pipeline root), which `aiplatform.PipelineJob(template_path=...)`
reads; for Kubeflow it is the bare pipeline spec, which the kfp client uploads.
"""

from tfx import v1 as tfx

from pipeline.config import DATA_ROOT_PARAMETER, TARGETS, PipelineConfig
from pipeline.pipeline import create_pipeline


def compile_spec(config: PipelineConfig, image: str, target: str) -> dict:
    """The compiled pipeline as a dict: a PipelineJob for Vertex, a PipelineSpec for Kubeflow.

    Args:
      config: the pipeline config; its paths must be reachable from the cluster (gs://, s3://, ...).
      image: the container image every component runs in (built from this repo's Dockerfile).
      target: 'vertex' or 'kubeflow'.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=".",
    )
    job = runner.run(create_pipeline(config), parameter_values={DATA_ROOT_PARAMETER: config.data_root}, write_out=False)
    # The default also goes into the spec itself, so a run that does not set data_root reads the compiled data.
    parameter = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"][DATA_ROOT_PARAMETER]
    parameter["defaultValue"] = config.data_root
    parameter["isOptional"] = True
    return job if target == "vertex" else job["pipelineSpec"]
