# The pipeline image for Kubeflow Pipelines v2 / Vertex AI: TFX 1.16 with this project installed, so every
# component's executor can import contract.py, transform/, trainer/, components/ and pipeline/ (and find the curated schema
# at /pipeline/pipeline/schema.pbtxt, the path `fraud-pipeline compile` puts in the spec by default).
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/fraud-pipeline:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/fraud-pipeline:TAG
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# TFX 1.16 and TF Transform run on Keras 2 (tf_keras), as the local runs do.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /pipeline
# The same pinned set as local runs: what the base image already has at these versions stays as it is.
COPY requirements.lock setup.py ./
COPY contract.py ./
COPY pipeline/ pipeline/
COPY components/ components/
COPY transform/ transform/
COPY trainer/ trainer/
RUN pip install --no-cache-dir -c requirements.lock -e . \
    && python -c "import contract, pipeline.pipeline, components.example_gen, transform.preprocessing, trainer.task"

# The base image's entrypoint runs TFX executors; the compiled spec sets the command explicitly
# (python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor).
