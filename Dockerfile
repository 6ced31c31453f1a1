# The pipeline image, used twice:
# - by Kubeflow Pipelines v2 / Vertex AI for every component: TFX 1.16 with this project installed, so each
#   executor can import contract.py, transform/, trainer/, components/ and pipeline/ (and find the curated schema at
#   /pipeline/datasets/ulb/schema.pbtxt, the path `fraud-pipeline compile` puts in the spec by default). The compiled
#   spec sets each component's command (python -m pipeline.runners.container_entrypoint, TFX's Kubeflow V2
#   entrypoint with the input types the open-source backend leaves out), so the entrypoint below does not get in its
#   way. `fraud-pipeline rehearse` runs those commands with this checkout standing for /pipeline;
# - by the Beam workers of the Beam-based components (CsvExampleGen, StatisticsGen, Transform, Evaluator) on
#   Dataflow (--sdk_container_image=IMAGE, which `compile` adds) or a portable runner's DOCKER environment
#   (--environment_config=IMAGE): those start the image's entrypoint, Beam's SDK boot, which starts the SDK worker.
#   The workers then import this project's DoFns and the pinned TF / TFX-BSL / TFT / TFMA from the image itself.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/fraud-pipeline:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/fraud-pipeline:TAG

# Beam's SDK boot must come from the same Beam release as the SDK in the image (apache-beam==2.59.0 in
# requirements.lock): Dataflow refuses a worker whose SDK differs from the one that submitted the job.
FROM apache/beam_python3.10_sdk:2.59.0 AS beam

# TFX's own image is built the same way (tfx/tools/docker/Dockerfile at v1.16.0 copies /opt/apache/beam from the
# Beam SDK image and sets it as the entrypoint); copying the boot again pins it to the Beam this project runs.
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# TFX 1.16 and TF Transform run on Keras 2 (tf_keras), as the local runs do.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /pipeline
# The same pinned set as local runs: what the base image already has at these versions stays as it is.
COPY requirements.lock setup.py ./
COPY contract.py ./
COPY compat/ compat/
COPY datasets/ datasets/
COPY pipeline/ pipeline/
COPY components/ components/
COPY transform/ transform/
COPY trainer/ trainer/
RUN pip install --no-cache-dir -c requirements.lock -e . \
    && python -c "import apache_beam, contract, pipeline.definition.pipeline, pipeline.runners.container_entrypoint, components.example_gen, transform.preprocessing, trainer.task; assert apache_beam.__version__ == '2.59.0', apache_beam.__version__"

# The model server's environment (fraud-pipeline serve --manifest writes an InferenceService that runs it): KServe
# and TensorFlow without TFX, from its own lock, with this project installed without dependencies.
COPY requirements-serve.lock ./
RUN python -m venv /opt/serve \
    && /opt/serve/bin/pip install --no-cache-dir --no-deps -r requirements-serve.lock \
    && /opt/serve/bin/pip install --no-cache-dir --no-deps -e . \
    && /opt/serve/bin/python -c "import pipeline.server.app"

COPY --from=beam /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
