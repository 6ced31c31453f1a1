"""Compiles create_pipeline for Kubeflow Pipelines v2 or Vertex AI Pipelines with KubeflowV2DagRunner (no submission).

Kubeflow gets pipeline spec schema 2.1, the only one the open-source backend's driver reads (pipeline.runners.
kfp_backend names what it cannot run, and compile refuses a spec that fails it); Vertex AI gets schema 2.0 in a
PipelineJob (the spec under `pipelineSpec` plus `runtimeConfig` with the pipeline root), which
`aiplatform.PipelineJob(template_path=...)` reads. On both, every task runs this project's entrypoint
(pipeline.runners.container_entrypoint), and the tasks whose result depends on files outside their inputs are not
cached: CsvExampleGen (its data; TFX's driver hook that fingerprints the files runs on neither backend here) and
ServingBaseline (the push destination).
"""

from tfx import v1 as tfx

from pipeline.definition import config as cfg
from pipeline.definition.config import DATA_ROOT_PARAMETER, TARGETS, PipelineConfig
from pipeline.definition.pipeline import create_pipeline
from pipeline.runners import kfp_backend
from pipeline.runners.container_entrypoint import COMMAND

# Their outputs depend on more than their inputs and parameters, so a cache hit would hand back stale results.
UNCACHED_TASKS = (cfg.EXAMPLE_GEN, cfg.SERVING_BASELINE)


def compile_spec(config: PipelineConfig, image: str, target: str) -> dict:
    """The compiled pipeline as a dict: a PipelineJob for Vertex, a PipelineSpec for Kubeflow.

    Args:
      config: the pipeline config; its paths must be reachable from the cluster (gs://, s3://, ...).
      image: the container image every component runs in (built from this repo's Dockerfile).
      target: 'vertex' or 'kubeflow'.

    Raises:
      kfp_backend.UnsupportedSpecError: the Kubeflow spec holds what the open-source backend cannot run.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, default_commands=COMMAND, use_pipeline_spec_2_1=target == "kubeflow"
        ),
        output_dir=".",
    )
    job = runner.run(create_pipeline(config), parameter_values={DATA_ROOT_PARAMETER: config.data_root}, write_out=False)
    spec = job["pipelineSpec"]
    # The default also goes into the spec itself, so a run that does not set data_root reads the compiled data.
    parameter = spec["root"]["inputDefinitions"]["parameters"][DATA_ROOT_PARAMETER]
    parameter["defaultValue"] = config.data_root
    parameter["isOptional"] = True
    for task in UNCACHED_TASKS:
        spec["root"]["dag"]["tasks"][task].pop("cachingOptions", None)
    if target == "vertex":
        return job
    # The Kubeflow backend takes the pipeline root from the run request, not from the spec; `submit` passes this.
    spec["defaultPipelineRoot"] = config.pipeline_root
    kfp_backend.check(spec)
    return spec
