"""python -m pipeline.runners.worker_pool --port PORT [--log FILE]: a Beam worker pool whose SDK workers start once.

The sidecar of a Flink TaskManager or Spark worker for the EXTERNAL environment
(`--beam-arg=--environment_type=EXTERNAL --beam-arg=--environment_config=localhost:PORT`), run from the pipeline
image, with `--beam-workers-installed` on `run`/`compile` so that nothing is staged. It is Beam's own worker pool
service (`apache_beam.runners.worker.worker_pool_main.BeamFnExternalWorkerPoolServicer`) in its thread mode, after
importing TensorFlow, the TFX libraries and this project once: each worker the runner asks for is Beam's
`SdkHarness` on a thread of this process, connected to the runner's control endpoint, and ends when the runner
closes it. Beam's own entry point (`python -m apache_beam.runners.worker.worker_pool_main`, and boot's
`--worker_pool` mode, which runs it) always uses the process mode instead: a new Python per worker, which imports
TensorFlow again for each stage that needs it.

What the thread mode does not have: the job's pipeline options (the harness runs with Beam's defaults, which is what
this pipeline's jobs use) and per-worker logs to the runner (they go to this process's stderr). Serve one pool per
TaskManager: the runner numbers its workers per TaskManager, and one interpreter runs its workers under one GIL.
"""

import argparse
import importlib
import json
import logging
import os
import time

# What every Beam component's workers import, once for the pool's life.
PRELOAD = (
    "tensorflow",
    "tensorflow_transform.beam",
    "tensorflow_data_validation",
    "tensorflow_model_analysis",
    "tfx.components",
    "contract",
    "components",
    "transform",
    "apache_beam.runners.worker.sdk_worker",
)
# sdk_worker_main's default state cache (--max_cache_memory_usage_mb=100), which the thread mode otherwise sets to 0.
STATE_CACHE_BYTES = 100 << 20


def serve(port: int, log: str | None = None) -> None:
    """Imports PRELOAD, then serves the pool on PORT until killed; appends each worker request to LOG (a JSON line:
    worker id, time) when given."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFX 1.16's Keras 2, before TensorFlow is imported
    for module in PRELOAD:
        importlib.import_module(module)
    from apache_beam.runners.worker import worker_pool_main

    class Pool(worker_pool_main.BeamFnExternalWorkerPoolServicer):
        def StartWorker(self, request, context):  # noqa: N802 - gRPC's name
            if log:
                with open(log, "a") as f:
                    f.write(json.dumps({"worker_id": request.worker_id, "time": time.time()}) + "\n")
            return super().StartWorker(request, context)

    _, server = Pool.start(use_process=False, port=port, state_cache_size=STATE_CACHE_BYTES)
    logging.getLogger(__name__).warning("worker pool listening on %s", port)
    server.wait_for_termination()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.runners.worker_pool", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="the port to serve Beam's worker pool API on")
    parser.add_argument("--log", help="a file to append each worker request to (one JSON line each)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    serve(args.port, args.log)


if __name__ == "__main__":
    main()
