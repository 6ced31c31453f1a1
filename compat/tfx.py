"""TFX's orchestration: its Beam dependency packaging, its local runner's component launches, and its Kubeflow V2
entrypoint's flag parser.

Replaces:
- `tfx.utils.dependency_utils.make_beam_dependency_flags` (a module function TFX's Beam executors call), wrapped so
  that it returns the Beam arguments unchanged for a runner the caller says is local. Why: for Beam arguments that
  ship nothing, TFX packages its own install for remote workers (`setup.py sdist` in a subprocess, a few seconds for
  each Beam component, a temporary folder left behind), which a local runner's workers never use. Compared with
  TFX's own path by: tests/test_beam_workers_unit.py (TFX's executors package themselves for remote runners only).
- the `launcher` module LocalDagRunner launches each component through (`local_dag_runner.launcher`), for the
  duration of a run, with one whose `Launcher.launch` calls the caller's hooks before and after. Why: LocalDagRunner
  has no public callback, and its only other signal is its log text. Compared with TFX's own path by:
  tests/test_compat_unit.py (the hooks see every component of a run, the runner's launch is TFX's).
- nothing in the Kubeflow V2 entrypoint: its private `_parse_flags` parses a task's arguments, because the compiled
  arguments are TFX's and must parse as TFX parses them. Compared by: tests/test_rehearsal_e2e.py (every compiled
  task runs through it).
Where TFX is not the version these were written against: TFX packages itself, the run has no per-component progress
lines, and the entrypoint is TFX's own module, run as TFX's spec would run it.
"""

import contextlib
import runpy
import types
from collections.abc import Callable

import compat

DISTRIBUTIONS = ("tfx",)
KFP_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"


def skip_dependency_packaging(is_local: Callable[[list[str]], bool]) -> None:
    """TFX's Beam executors package TFX for remote workers except where `is_local(beam_pipeline_args)`. Idempotent."""
    if not compat.supported("tfx", *DISTRIBUTIONS):
        return
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags
    if getattr(original, "local_runners_skip", False):
        return

    def flags(beam_pipeline_args: list[str]) -> list[str]:
        if is_local(beam_pipeline_args):
            return list(beam_pipeline_args)
        return original(beam_pipeline_args)

    flags.local_runners_skip = True
    dependency_utils.make_beam_dependency_flags = flags


@contextlib.contextmanager
def component_launches(started: Callable[[str], None], finished: Callable[[str], None]):
    """While inside, LocalDagRunner calls `started(node_id)` before it launches a component and `finished(node_id)`
    after the launch returns (not when it raises). Yields whether the hooks are in place."""
    if not compat.supported("tfx_launches", *DISTRIBUTIONS):
        yield False
        return
    from tfx.orchestration.local import local_dag_runner
    from tfx.orchestration.portable import launcher

    class Launcher(launcher.Launcher):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.node_id = kwargs["pipeline_node"].node_info.id

        def launch(self, *args, **kwargs):
            started(self.node_id)
            result = super().launch(*args, **kwargs)
            finished(self.node_id)
            return result

    saved = local_dag_runner.launcher
    local_dag_runner.launcher = types.SimpleNamespace(Launcher=Launcher)
    try:
        yield True
    finally:
        local_dag_runner.launcher = saved


def run_kfp_entrypoint(main: Callable, entrypoint_module) -> None:
    """Runs `main` as TFX's Kubeflow V2 entrypoint runs its own: absl's app with TFX's flag parser. Where TFX is not
    the version `main` was written for, TFX's entrypoint runs as it is instead."""
    from absl import app

    if compat.supported("tfx_entrypoint", *DISTRIBUTIONS):
        app.run(main, flags_parser=entrypoint_module._parse_flags)
    else:
        runpy.run_module(KFP_ENTRYPOINT, run_name="__main__", alter_sys=True)
