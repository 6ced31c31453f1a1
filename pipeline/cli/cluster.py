"""The cluster commands: compile (a Kubeflow or Vertex spec), rehearse (a spec run here as its backend would) and
submit (a spec to Kubeflow Pipelines or Vertex AI)."""

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from contract import OutputLayout
from pipeline.cli.build import (
    IMAGE_PROJECT_DIR,
    IMAGE_SCHEMA_PATH,
    SOURCE_ROOT,
    add_pipeline_flags,
    dataset_of,
    image_schema_path,
    pipeline_config,
)
from pipeline.cli.data import data_input
from pipeline.cli.flags import UsageError
from pipeline.cli.printing import print_pages, print_run, say
from pipeline.definition import config as cfg
from pipeline.definition import faults
from pipeline.definition import status as st
from pipeline.definition.config import DATA_ROOT_PARAMETER, TARGETS
from pipeline.definition.startup import heavy_imports

# Where `submit --target kubeflow` reads a bearer token from, never from the command line.
TOKEN_ENV = "FRAUD_PIPELINE_KFP_TOKEN"


def register(commands) -> None:
    """Adds compile, submit and rehearse to the command parsers."""
    # Longer than a unit should be, on purpose: one argparse declaration a flag, in the order --help shows them.
    comp = commands.add_parser(
        "compile",
        help="compile the pipeline for Kubeflow Pipelines v2 or Vertex AI Pipelines",
        description=(
            "Compile the same pipeline with KubeflowV2DagRunner into a KFP v2 spec (JSON, or YAML when FILE ends in "
            ".yaml). Nothing is submitted. The data location is a runtime parameter (data_root); the other "
            "options are fixed in the spec."
        ),
    )
    comp.add_argument("--target", choices=TARGETS, required=True, help="vertex: a PipelineJob; kubeflow: a spec")
    comp.add_argument("--image", required=True, help="the pipeline image (see the Dockerfile), e.g. gcr.io/P/fraud:1")
    comp.add_argument(
        "--pipeline-root", required=True, metavar="ROOT", help="where runs write artifacts, e.g. gs://B/r"
    )
    comp.add_argument(
        "--data",
        required=True,
        metavar="URI",
        help="a CSV file, a folder URI ending in /, or spans as a pattern with {SPAN} (e.g. gs://B/data/span-{SPAN}/*.csv.gz;"
        " each run picks the newest spans then); its folder is the default of the data_root runtime parameter",
    )
    comp.add_argument("--output", required=True, metavar="FILE", help="the spec file to write (.json or .yaml)")
    comp.add_argument("--serving-dir", metavar="URI", help="where blessed models are pushed (default: ROOT/serving)")
    comp.add_argument(
        "--schema-path",
        metavar="PATH",
        help=f"the curated schema as the containers see it (default: the --dataset spec's schema where the Dockerfile "
        f"puts the project, {IMAGE_SCHEMA_PATH} for the default spec)",
    )
    add_pipeline_flags(comp)
    comp.set_defaults(handler=_compile)

    sub = commands.add_parser(
        "submit",
        help="start a run of a compiled spec on Vertex AI Pipelines or Kubeflow Pipelines",
        description="Upload a spec written by `fraud-pipeline compile` and start a run; prints its id and URL.",
    )
    sub.add_argument("file", metavar="FILE", help="the compiled spec (.json or .yaml)")
    sub.add_argument("--target", choices=TARGETS, required=True)
    sub.add_argument("--project", help="Google Cloud project (vertex)")
    sub.add_argument("--region", help="Google Cloud region, e.g. europe-west4 (vertex)")
    sub.add_argument("--service-account", metavar="SA", help="service account the run uses (vertex)")
    sub.add_argument("--host", metavar="URL", help="the Kubeflow Pipelines API endpoint (kubeflow)")
    sub.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"a file holding a bearer token for the Kubeflow Pipelines API (kubeflow); or set {TOKEN_ENV}. "
        "The token is never taken from the command line, where the process list and shell history would keep it",
    )
    sub.add_argument("--token", help=argparse.SUPPRESS)
    sub.add_argument("--experiment", default="fraud-pipeline", help="experiment to file the run under (kubeflow)")
    sub.add_argument("--run-name", help="the run's name (kubeflow; default: the file name)")
    sub.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a runtime parameter of the spec, repeatable (e.g. --param data_root=gs://bucket/new-data)",
    )
    sub.set_defaults(handler=_submit)

    reh = commands.add_parser(
        "rehearse",
        help="execute a compiled spec on this machine as Kubeflow Pipelines or Vertex AI would",
        description=(
            "Run every task of a spec written by `fraud-pipeline compile` here, in dependency order, each as its "
            "container would: the compiled command and args with the placeholders filled, the ExecutorInput built "
            "as the target's backend builds it (open-source Kubeflow Pipelines' driver for a Kubeflow spec, the "
            "legacy invocation for a Vertex PipelineJob). gs:// and s3:// URIs are mapped under --root, the image's "
            "/pipeline/ onto this checkout, Dataflow's Beam arguments dropped (the direct runner runs the jobs); "
            "each mapping is printed. Writes ROOT/summary.json and the report as `run` does, with the same exit "
            "codes, and each task's log under ROOT/logs/RUN/. A spec is code: it runs the commands it holds, as "
            "your user, on this machine; rehearse only specs you compiled yourself."
        ),
    )
    reh.add_argument("spec", metavar="SPEC", help="the compiled spec (.json or .yaml)")
    reh.add_argument(
        "--data",
        metavar="PATH",
        help="a local CSV file or folder for the data_root parameter (a file's name must match the compiled "
        "pattern); default: the compiled data_root, mapped under --root",
    )
    reh.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a runtime parameter, as for submit"
    )
    reh.add_argument(
        "--root",
        default="output/rehearsal",
        metavar="DIR",
        help="the folder that stands for the object store and holds the logs, reused across rehearsals so the "
        "serving folder carries over (default: ./%(default)s)",
    )
    reh.add_argument(
        "--parallel", type=int, default=2, metavar="N", help="tasks run at once at most (default: %(default)s)"
    )
    reh.add_argument("--no-report", action="store_true", help="skip the HTML report")
    reh.set_defaults(handler=_rehearse)


def _compile(args: argparse.Namespace) -> int:
    if "://" not in args.pipeline_root:
        raise UsageError(f"--pipeline-root {args.pipeline_root}: give a URI the cluster can reach (gs://, s3://)")
    if args.pipeline_root.startswith("minio://"):
        # The Kubeflow default store: its launcher can upload there, but the TFX executors write their artifacts
        # themselves through TensorFlow's file systems, which have no minio:// scheme.
        raise UsageError(
            f"--pipeline-root {args.pipeline_root}: TFX's executors cannot write to minio://; give a gs:// bucket "
            "(or s3:// with tensorflow-io in the image)"
        )
    root = args.pipeline_root.rstrip("/")
    config = pipeline_config(
        args,
        data_input(args.data),
        image=args.image,
        setup_file=f"{IMAGE_PROJECT_DIR}/setup.py",
        pipeline_root=root,
        serving_dir=args.serving_dir or f"{root}/serving",
        schema_path=args.schema_path or image_schema_path(dataset_of(args)),
        metadata_path=None,
        # Nothing on Kubeflow or Vertex runs the driver hook TFX compiles for a FileBasedExampleGen.
        example_gen_driver=False,
        runtime_data_root=True,
    )
    from pipeline.runners.spec_io import write_spec

    with heavy_imports():
        from pipeline.runners.kubeflow import compile_spec

    write_spec(compile_spec(config, args.image, args.target), args.output)
    print(f"compiled for {args.target}: {args.output}")
    return st.EXIT_OK


def _rehearsal_params(args: argparse.Namespace, spec: dict) -> dict:
    """--param values and --data (as data_root), checked against the spec."""
    import fnmatch

    from pipeline.runners.spec_config import task_parameters
    from pipeline.runners.submit import SubmitError, parse_params

    try:
        params = parse_params(args.param, spec)
    except SubmitError as e:
        raise UsageError(str(e)) from e
    if args.data:
        path = Path(args.data).expanduser().resolve()
        if not path.exists():
            raise UsageError(f"--data {args.data}: no such file or folder")
        pattern = json.loads(task_parameters(spec, cfg.EXAMPLE_GEN)["input_config"])["splits"][0]["pattern"]
        if path.is_file() and not fnmatch.fnmatch(path.name, pattern):
            raise UsageError(f"--data {args.data}: the spec reads files matching {pattern} in data_root")
        params[DATA_ROOT_PARAMETER] = str(path.parent if path.is_file() else path)
    return params


def _rehearse(args: argparse.Namespace) -> int:
    from pipeline.runners import rehearsal
    from pipeline.runners.spec_config import config_of, task_parameters
    from pipeline.runners.spec_io import read_spec

    if not Path(args.spec).is_file():
        raise UsageError(f"{args.spec}: no such file")
    spec = read_spec(args.spec)
    root = Path(args.root).expanduser().resolve()
    faults.check_writable(str(root), "--root")
    params = _rehearsal_params(args, spec)
    try:
        done = rehearsal.rehearse(spec, root, SOURCE_ROOT, params, say, parallel=args.parallel)
    except rehearsal.RehearsalError as e:
        raise UsageError(str(e)) from e
    from pipeline.runners.finish import finish

    mapping = rehearsal.Mapping(root, SOURCE_ROOT)
    destination = json.loads(task_parameters(spec, cfg.PUSHER)["push_destination"])["filesystem"]["base_directory"]
    config = config_of(spec, done.parameters[DATA_ROOT_PARAMETER], done.pipeline_root, mapping.text(destination))
    layout = OutputLayout(str(root))
    tasks = {n: {"state": t.state, "seconds": t.seconds, "log": t.log} for n, t in done.tasks.items()}
    extra = {"rehearsal": {"target": done.target, "spec": str(Path(args.spec).resolve()), "mapped": done.mapped}}
    extra["rehearsal"]["tasks"] = tasks
    failed = [t for t in done.tasks.values() if t.state == "FAILED"]
    with _quiet_logs():
        finished = finish(
            rehearsal.executed(done),
            config,
            layout,
            done.parameters[DATA_ROOT_PARAMETER],
            extra=extra,
            pages=not args.no_report and not failed,
        )
    verdict, record = finished.verdict, finished.record
    if verdict.exit_code != st.EXIT_OK:
        print(f"fraud-pipeline: {verdict.message}", file=sys.stderr)
        for task in failed:
            print(
                f"  task {task.name} failed: {task.error}\n  command: {' '.join(task.command)[:300]} ...\n"
                f"  log: {task.log}",
                file=sys.stderr,
            )
    print_run(record)
    print(f"outputs: {layout.root} (summary: {layout.summary_path}, task logs: {root / 'logs' / done.run_id})")
    print_pages(finished.pages)
    return verdict.exit_code


@contextlib.contextmanager
def _quiet_logs():
    import logging

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        yield
    finally:
        logging.getLogger().setLevel(level)


def _token(args: argparse.Namespace) -> str | None:
    """The Kubeflow bearer token from --token-file or the environment; refused on the command line."""
    if args.token is not None:
        raise UsageError(
            f"--token: a token on the command line shows in the process list and the shell history; "
            f"put it in a file for --token-file, or in the environment variable {TOKEN_ENV}"
        )
    if args.token_file:
        path = Path(args.token_file).expanduser()
        if not path.is_file():
            raise UsageError(f"--token-file {args.token_file}: no such file")
        token = path.read_text().strip()
        if not token:
            raise UsageError(f"--token-file {args.token_file}: the file is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _submit(args: argparse.Namespace) -> int:
    needed = {"vertex": ("project", "region"), "kubeflow": ("host",)}[args.target]
    missing = [f"--{name}" for name in needed if not getattr(args, name)]
    if missing:
        raise UsageError(f"--target {args.target} needs {' and '.join(missing)}")
    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    from pipeline.runners.kfp_backend import UnsupportedSpecError
    from pipeline.runners.spec_io import read_spec
    from pipeline.runners.submit import SubmitError, parse_params, submit_kubeflow, submit_vertex

    token = _token(args) if args.target == "kubeflow" else None
    try:
        params = parse_params(args.param, read_spec(args.file))
        if args.target == "vertex":
            submitted = submit_vertex(args.file, args.project, args.region, params, args.service_account)
        else:
            run_name = args.run_name or Path(args.file).stem
            submitted = submit_kubeflow(args.file, args.host, params, run_name, args.experiment, token)
    except UnsupportedSpecError as e:
        raise UsageError(f"{args.file}: {e} (compile it with --target kubeflow)") from e
    except SubmitError as e:
        message = str(e).replace(token, "[token]") if token else str(e)  # a secret never reaches the terminal
        print(f"fraud-pipeline: {message}", file=sys.stderr)
        return st.EXIT_FAILED
    print(f"run id: {submitted.run_id}")
    print(f"run URL: {submitted.url}")
    return st.EXIT_OK
