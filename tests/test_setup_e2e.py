"""The set-up's own steps, run as the set-up runs them: slow enough (a TensorFlow and TFX import) to sit with the
end-to-end tier, not in `make test-fast`."""

import os
import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.e2e
def test_the_byte_compile_step_of_the_set_up_runs_in_this_environment(tmp_path):
    """scripts/compile-imports imports every project module it lists and every component's executor; when it fails,
    the fast set-up (uv) falls back to pip's, minutes slower, with nothing but a line to say so (twice already: a
    module moved by the layer folders, then the model server's KServe model)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compile-imports")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPYCACHEPREFIX": str(tmp_path / "pyc")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "byte-compiled" in proc.stdout
