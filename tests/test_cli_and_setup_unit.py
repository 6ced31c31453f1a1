"""The command line's help, usage errors, the set-up's search for Python 3.10, and its byte-compiling of what a run
loads."""

import gc
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compat import importlib_metadata
from pipeline import cli
from pipeline.cli import cluster as cluster_cli
from pipeline.cli import data as cli_data
from pipeline.cli import local as local_cli
from pipeline.cli import scoring as scoring_cli
from pipeline.definition import startup, status
from pipeline.runners import container_entrypoint
from tests.support import CLI, ROOT


def test_help_lists_the_subcommands_and_options():
    top = subprocess.run([str(CLI), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("run", "compile", "submit", "report", "compare"):
        assert command in top
    run = subprocess.run([str(CLI), "run", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--data", "--output", "--split", "--no-cache", "--beam-arg", "--no-report", "--min-train-frauds"):
        assert option in run
    for option in ("--min-precision", "--fn-cost", "--fp-cost", "--threshold"):
        assert option in run
    report = subprocess.run([str(CLI), "report", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--run" in report and "--output" in report
    compare = subprocess.run([str(CLI), "compare", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--strategies" in compare and "--min-precision" in compare


def test_the_console_script_leaves_the_shutdown_collection_to_the_os(monkeypatch):
    """The installed command and `python -m pipeline.cli` go through cli.console, which passes main's exit code
    on and freezes the objects alive after the command, so the interpreter's shutdown does not collect them."""
    assert "from pipeline.cli import console" in CLI.read_text()
    assert "console()" in (ROOT / "pipeline" / "cli" / "__main__.py").read_text()
    monkeypatch.setattr(cli, "main", lambda argv=None: 3)
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        assert cli.console() == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_installed_distributions_are_read_once_per_command(monkeypatch, tmp_path):
    """main() makes packages_distributions() read the installed metadata once: the Google clients' version checks
    call it on import, one full read each. Same answer as the unpatched function, a copy for each caller."""
    from importlib import metadata

    called = []
    monkeypatch.setattr(importlib_metadata, "scan_installed_distributions_once", lambda: called.append(1))
    cli.main(["report", "--output", str(tmp_path)])  # a usage error (no run there), after the start-up
    assert called == [1]
    monkeypatch.undo()

    original = metadata.packages_distributions
    reads = []
    monkeypatch.setattr(metadata, "packages_distributions", lambda: reads.append(1) or original())
    importlib_metadata.scan_installed_distributions_once()
    first = metadata.packages_distributions()
    first["tfx"].append("changed by a caller")
    second = metadata.packages_distributions()
    importlib_metadata.scan_installed_distributions_once()  # a second main() in the same process does not wrap it again
    assert metadata.packages_distributions() == second == original()
    assert "tfx" in second["tfx"] and "changed by a caller" not in second["tfx"]
    assert len(reads) == 1


def test_the_stack_is_imported_without_the_collector_and_left_out_of_later_collections():
    gc.unfreeze()
    try:
        assert gc.isenabled()
        with startup.heavy_imports():
            assert not gc.isenabled()
            built = [[index] for index in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= len(built)
        gc.unfreeze()
        with pytest.raises(RuntimeError), startup.heavy_imports():
            raise RuntimeError("an import failed")
        assert gc.isenabled()
    finally:
        gc.unfreeze()
    # The commands that load TensorFlow and TFX load it that way, and so does every task of a compiled spec.
    imports = {
        local_cli._run: "from pipeline.runners.local import run",
        local_cli._compare: "from pipeline.runners.local import compare",
        cluster_cli._compile: "from pipeline.runners.kubeflow import compile_spec",
        scoring_cli._predict: "from pipeline.scoring import predict as predict_lib",
        # Every task of a compiled spec (and of a rehearsal) is a process of its own that imports the stack.
        container_entrypoint.tfx_entrypoint: "from tfx.orchestration.kubeflow.v2.container import",
    }
    for handler, statement in imports.items():
        pattern = r"with (startup\.)?heavy_imports\(\):\n\s+" + re.escape(statement)
        assert re.search(pattern, inspect.getsource(handler)), handler.__name__


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--min-precision", "0.9", "--threshold", "0.5"], "one way"),
        (["run", "--fn-cost", "10"], "go together"),
        (["compare", "--strategies", "class_weight,smote"], "--strategies"),
        (["run", "--min-eval-frauds", "0"], "min_eval_frauds must be at least 1"),
    ],
)
def test_threshold_and_strategy_flags_are_checked_before_any_work(args, message, capsys):
    assert cli.main(args) == status.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_missing_data_is_a_usage_error(tmp_path, capsys):
    code = cli.main(["run", "--data", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "out")])
    assert code == status.EXIT_USAGE
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_data_path_forms(tmp_path):
    (tmp_path / "a.csv.gz").write_bytes(b"")
    assert cli_data.split_data_path(str(tmp_path)) == (str(tmp_path), "*.csv*")
    assert cli_data.split_data_path(str(tmp_path / "a.csv.gz")) == (str(tmp_path), "a.csv.gz")
    assert cli_data.split_data_path("gs://bucket/data/creditcard.csv") == ("gs://bucket/data", "creditcard.csv")
    assert cli_data.split_data_path("gs://bucket/data/") == ("gs://bucket/data", "*.csv*")
    (tmp_path / "empty").mkdir()
    with pytest.raises(cli.UsageError, match="no file matching"):
        cli_data.split_data_path(str(tmp_path / "empty"))


def test_find_python_refuses_a_wrong_python():
    env = dict(os.environ, PYTHON="/bin/true")
    proc = subprocess.run([str(ROOT / "scripts" / "find-python")], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "PYTHON=/bin/true is not a working Python 3.10" in proc.stderr


@pytest.mark.skipif(
    any(Path(p).exists() for p in ("/usr/bin/python3.10", "/usr/local/bin/python3.10")),
    reason="this machine has a system Python 3.10, so the search cannot come up empty",
)
def test_find_python_names_what_it_looked_for(tmp_path):
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run(["/bin/bash", str(ROOT / "scripts" / "find-python")], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "no Python 3.10 found" in proc.stderr
    assert "python3.10 /usr/bin/python3.10" in proc.stderr and "PYTHON=" in proc.stderr


def test_compare_trains_each_candidate_with_its_change_to_the_flags():
    import json

    from pipeline.definition import config as cfg
    from pipeline.definition.pipeline import create_compare_pipeline  # TFX
    from trainer.hparams import CANDIDATES, HParams

    config = cfg.PipelineConfig(
        pipeline_root="/r", serving_dir="/s", data_root="/d", data_pattern="*.csv", schema_path="/x.pbtxt",
        hparams=HParams(units=8, seed=3),
    )  # fmt: skip
    names = ("baseline", "oversample", "time_of_day", "deep", "ensemble")
    components = {c.id: c for c in create_compare_pipeline(config, names).components}
    for name in names:
        trainer_id, evaluator_id = cfg.compare_node_ids(name)
        assert evaluator_id in components
        hparams = json.loads(components[trainer_id].exec_properties["custom_config"])["hparams"]
        # The candidate's change on top of the run's flags, and nothing else changed.
        assert hparams == {**HParams(units=8, seed=3).to_dict(), **CANDIDATES[name]}
    assert "time_of_day (--time-of-day)" in " ".join(
        subprocess.run([str(CLI), "compare", "--help"], capture_output=True, text=True, check=True).stdout.split()
    )


_UNCOMPILED = """
import importlib, importlib.util, json, os, sys, sysconfig
from pipeline.definition import config as cfg
from pipeline.definition.pipeline import create_compare_pipeline, create_pipeline
from trainer.hparams import CANDIDATES
import pipeline.runners.local, pipeline.cli.local, trainer.task, transform.preprocessing
config = cfg.PipelineConfig(pipeline_root="/r", serving_dir="/s", data_root="/d", data_pattern="*.csv",
                            schema_path="/x.pbtxt", tune_trials=2)
for c in create_pipeline(config).components + create_compare_pipeline(config, tuple(CANDIDATES)).components:
    executor = getattr(c.executor_spec, "executor_class", None)
    if executor is not None:
        importlib.import_module(executor.__module__)
site = sysconfig.get_paths()["purelib"]
files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
files = [f for f in files if f and f.endswith(".py") and f.startswith(site)]
uncompiled = [f for f in files if not os.path.exists(importlib.util.cache_from_source(f))][:20]
loaded = [m for m in ("tfx", "tfx.v1", "google.cloud.aiplatform", "kfp") if m in sys.modules]
print(json.dumps({"modules": len(files), "uncompiled": uncompiled, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def what_a_run_loads() -> dict:
    """The pipeline's modules and every component's executor imported in a fresh interpreter that writes no .pyc:
    how many installed modules it loaded, which had no .pyc, and which of TFX's and the cloud clients' it loaded."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _UNCOMPILED], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.xdist_group("what_a_run_loads")
def test_what_a_run_loads_is_byte_compiled(what_a_run_loads):
    """The bootstrap byte-compiles the modules the commands import (scripts/compile-imports): without .pyc files,
    where PYTHONDONTWRITEBYTECODE is set (as on these machines), every process compiles TensorFlow's and TFX's
    sources again, about 20 s a process. Each installed module a run loads must have its .pyc."""
    assert what_a_run_loads["modules"] > 2000  # TensorFlow, TFX, Beam, TFMA, ...
    missing = what_a_run_loads["uncompiled"]
    assert missing == [], f"installed modules without .pyc (scripts/compile-imports missed them): {missing}"


@pytest.mark.slow
@pytest.mark.xdist_group("what_a_run_loads")
def test_a_local_run_imports_no_cloud_client(what_a_run_loads):
    """The local runner and every module a run loads take TFX's components from their own modules: tfx.v1 would
    load google-cloud-aiplatform, 5 s of every run's start (docs/benchmarks.md)."""
    assert what_a_run_loads["loaded"] == ["tfx"]
