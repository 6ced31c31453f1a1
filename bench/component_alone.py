"""One component's executor alone, on the inputs of one of its executions in a run's ML Metadata store.

    python bench/component_alone.py RUN_DIR COMPONENT EXECUTOR_CLASS OUT [--which N] [-- BEAM_ARGS...]

RUN_DIR: a `fraud-pipeline run --output` folder (its metadata.sqlite); COMPONENT: the end of the execution type's
name (StatisticsGen, Transform, Evaluator, CsvExampleGen, ...); EXECUTOR_CLASS: a dotted path (the project's, or
TFX's for the stock executor); OUT: a folder for fresh outputs. It prints the executor's wall and CPU seconds and the
process's peak RSS as JSON. This is how the benchmarks page measures a lever on one component: the same recorded
inputs and properties for both executors, alternating, in fresh processes.
"""

import argparse
import importlib
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("component")
    parser.add_argument("executor")
    parser.add_argument("out")
    parser.add_argument("--which", type=int, default=-1, help="which execution of the component (0: the first)")
    argv = sys.argv[1:]
    beam_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)

    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx.types import artifact_utils

    from pipeline.definition import beam_workers

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(args.run_dir, "metadata.sqlite")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    (kind,) = [t for t in store.get_execution_types() if t.name.endswith(args.component)]
    execution = sorted(store.get_executions_by_type(kind.name), key=lambda e: e.id)[args.which]
    properties = {
        k: v.string_value if v.HasField("string_value") else v.int_value
        for k, v in execution.custom_properties.items()
        if not k.startswith("__")
    }
    inputs, outputs = {}, {}
    for event in store.get_events_by_execution_ids([execution.id]):
        (artifact,) = store.get_artifacts_by_id([event.artifact_id])
        (artifact_type,) = store.get_artifact_types_by_id([artifact.type_id])
        key = event.path.steps[0].key
        if event.type == event.INPUT:
            inputs.setdefault(key, []).append(artifact_utils.deserialize_artifact(artifact_type, artifact))
        elif event.type in (event.OUTPUT, event.DECLARED_OUTPUT, event.PENDING_OUTPUT):
            fresh = artifact_utils.deserialize_artifact(
                artifact_type, metadata_store_pb2.Artifact(type_id=artifact.type_id)
            )
            fresh.uri = os.path.join(args.out, key)
            os.makedirs(fresh.uri, exist_ok=True)
            outputs.setdefault(key, []).append(fresh)
    module, _, name = args.executor.rpartition(".")
    executor_class = getattr(importlib.import_module(module), name)
    # As the CLI runs it: no package of TFX for remote workers on a local runner.
    beam_workers.no_tfx_package_for_local_workers()
    context = executor_class.Context(beam_pipeline_args=beam_args, tmp_dir=os.path.join(args.out, "tmp"))
    started, cpu = time.monotonic(), time.process_time()
    executor_class(context).Do(inputs, outputs, properties)
    print(json.dumps({
        "wall": round(time.monotonic() - started, 1),
        "cpu": round(time.process_time() - cpu, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
