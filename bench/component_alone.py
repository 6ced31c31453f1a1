"""One component's executor alone, on the inputs of one of its executions in a run's ML Metadata store.

    python bench/component_alone.py RUN_DIR COMPONENT EXECUTOR_CLASS OUT [--which N] [-- BEAM_ARGS...]

RUN_DIR: a `fraud-pipeline run --output` folder (its metadata.sqlite); COMPONENT: the end of the execution type's
name (StatisticsGen, Transform, Evaluator, CsvExampleGen, ...); EXECUTOR_CLASS: a dotted path (the project's, or
TFX's for the stock executor); OUT: a folder for fresh outputs. It prints the executor's wall and CPU seconds and the
process's peak RSS as JSON. This is how the benchmarks page measures a lever on one component: the same recorded
inputs and properties for both executors, alternating, in fresh processes. For a Trainer
(tfx.components.trainer.executor.GenericExecutor) it also prints model.fit's own seconds ("fit"), so that the read
and the export can be told from the epochs.
"""

import argparse
import glob
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

    from tfx.dsl.components.base import base_beam_executor

    import contract
    from pipeline.definition import beam_workers
    from pipeline.results import metadata

    inputs, outputs, properties, _ = metadata.executor_io(
        os.path.join(args.run_dir, "metadata.sqlite"), args.component, args.which, args.out
    )
    module, _, name = args.executor.rpartition(".")
    executor_class = getattr(importlib.import_module(module), name)
    # As the CLI runs it: no package of TFX for remote workers on a local runner.
    beam_workers.no_tfx_package()
    tmp_dir = os.path.join(args.out, "tmp")
    if issubclass(executor_class, base_beam_executor.BaseBeamExecutor):
        context = executor_class.Context(beam_pipeline_args=beam_args, tmp_dir=tmp_dir)
    else:  # the Trainer's and the Tuner's executors run no Beam pipeline
        context = executor_class.Context(tmp_dir=tmp_dir)
    started, cpu = time.monotonic(), time.process_time()
    executor_class(context).Do(inputs, outputs, properties)
    measured = {
        "wall": round(time.monotonic() - started, 1),
        "cpu": round(time.process_time() - cpu, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    # A Trainer's model.fit alone (its training summary's fit_seconds), to tell the read and export from the epochs.
    for summary in glob.glob(os.path.join(args.out, "**", contract.TRAINING_SUMMARY), recursive=True):
        with open(summary) as f:
            measured["fit"] = json.load(f)["fit_seconds"]
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
