"""A change to the code a component runs re-runs that component, and only what depends on it."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from pipeline.definition import config as cfg
from tests.support import FIXTURE, ROOT, executions_per_node

pytestmark = pytest.mark.e2e


def test_an_edited_gate_re_runs_the_gate_and_nothing_else(time_run, tmp_path):
    # The user code as it would be after an edit: a copy of the packages TFX loads whose gate module changed, put
    # first on the path. pipeline/ and the contract (with the schema and thresholds beside it, whose paths are part
    # of ImportSchemaGen's and the DistributionValidator's properties) still come from the installed project.
    code = tmp_path / "code"
    for name in ("compat", "components", "transform", "trainer"):
        shutil.copytree(ROOT / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))
    with open(code / "components" / "anomalies_gate" / "component.py", "a") as f:
        f.write("\n# an edit that changes no behaviour\n")
    # A copy of the time run's output folder, so the other tests' run stays as it was.
    output = tmp_path / "output"
    shutil.copytree(time_run.output, output)

    env = dict(os.environ, PYTHONPATH=str(code))
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--data", str(FIXTURE), "--output", str(output), "--no-report"],
        capture_output=True,
        text=True,
        cwd=code,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((output / "summary.json").read_text())
    before, after = time_run.summary["code_versions"], summary["code_versions"]
    assert {c for c in before if before[c] != after[c]} == {cfg.GATE}
    states = {node: c["state"] for node, c in summary["components"].items()}
    assert states.pop(cfg.GATE) == "COMPLETE"
    # The push destination OUTPUT/serving is a property of ServingBaseline and the Pusher, and it moved with the
    # copied folder: they re-run for that, and the Evaluator with them (its baseline input is new).
    for node in (cfg.SERVING_BASELINE, cfg.EVALUATOR, cfg.PUSHER):
        assert states.pop(node) == "COMPLETE", node
    assert set(states.values()) == {"CACHED"}, states
    # The gate ran twice in this folder's history: once in the time run, once now.
    assert executions_per_node(str(output / "metadata.sqlite"))[cfg.GATE] == ["COMPLETE", "COMPLETE"]
