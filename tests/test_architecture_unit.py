"""The layout is the architecture: layers import only downwards, no import cycles, one contract, tests apart,
and the code fingerprint that re-runs a component whenever the code it runs changes."""

import ast
import shutil
from pathlib import Path

import pytest

from pipeline.definition import config as cfg
from pipeline.definition import fingerprint
from tests.support import ROOT

GRAPH = fingerprint.imports()

# The folders, bottom to top; a module may import modules of its own layer or below. contract.py and the library
# overrides (compat/) import nothing of the project but the contract; then the code TFX loads (each custom component
# in its folder under components/, what they share in components/lib/, the preprocessing_fn, the trainer); then the
# pipeline definition, reading runs back, scoring, the pages, the runners, and the command line last.
LAYERS = (
    ("contract", "compat", "datasets"),
    ("components", "transform", "trainer"),
    ("pipeline.definition",),
    ("pipeline.results",),
    ("pipeline.online_store",),
    ("pipeline.scoring",),
    ("pipeline.server",),
    ("pipeline.report",),
    ("pipeline.runners",),
    ("pipeline.cli",),
)


def _layer(module: str) -> int:
    if module == "pipeline":  # the package's own __init__: a docstring only
        return 0
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer; add it to LAYERS")


def test_the_layers_are_the_folders():
    """Every entry of LAYERS is a folder of the tree (or contract.py), and every folder of project code is in one:
    no module sits loose in pipeline/ or components/ beside the layer folders."""
    for prefixes in LAYERS:
        for prefix in prefixes:
            path = ROOT / prefix.replace(".", "/")
            assert path.is_dir() or path.with_suffix(".py").is_file(), prefix
    loose = [
        str(path.relative_to(ROOT))
        for package in ("pipeline", "components")
        for path in (ROOT / package).glob("*.py")
        if path.name != "__init__.py"
    ]
    assert loose == []
    component_folders = {p.name for p in (ROOT / "components").iterdir() if (p / "__init__.py").is_file()}
    assert {"lib", "example_gen", "statistics_gen", "anomalies_gate", "transform", "evaluator"} <= component_folders
    for name in fingerprint.module_files():
        _layer(name)  # raises for a module in no layer


def test_components_share_only_their_library():
    """A component's folder imports the contract, compat, components.lib and its own folder, no other component's."""
    for module, targets in GRAPH.items():
        parts = module.split(".")
        if parts[0] != "components" or len(parts) < 3 or parts[1] == "lib":
            continue
        others = {
            t
            for t in targets
            if t.startswith("components.") and not t.startswith(("components.lib", f"components.{parts[1]}"))
        }
        assert others == set(), module


def test_the_graph_is_read_from_the_sources():
    # Known edges, so the checks below cannot pass on an empty graph.
    assert "contract" in GRAPH["trainer.task"]
    assert "compat.tfma" in GRAPH["components.evaluator.component"]
    assert "pipeline.definition.pipeline" in GRAPH["pipeline.runners.local"]
    assert "pipeline.runners.local" in GRAPH["pipeline.cli.local"]  # lazy imports count
    assert "pipeline.runners.finish" in GRAPH["pipeline.runners.local"]
    assert len(GRAPH) > 30


def _tree_imports(source: str) -> set[str]:
    """What the syntax tree says a module imports, the names as fingerprint.imported_names gives them."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_text_match_misses_no_import_the_syntax_tree_holds():
    # The fingerprint reads imports from the text (fast); a miss would leave a component cached after a change to
    # code it runs. Every project module, and the forms the project writes.
    for name, path in fingerprint.module_files().items():
        missed = _tree_imports(path.read_text()) - fingerprint.imported_names(path.read_text())
        assert not missed, f"{name}: {missed}"
    forms = '''"""import not.this.docstring.word is a sentence"""
import a.b as c, d
from e.f import (
    g,  # why
    h as i,
)
from j import k; from l import m


def f():
    if True:
        import n.o
'''
    assert _tree_imports(forms) <= fingerprint.imported_names(forms)
    assert fingerprint.imported_names(forms) == _tree_imports(forms)


def test_every_import_goes_down_a_layer_or_stays_in_it():
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_there_is_no_import_cycle():
    state: dict[str, str] = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join([*path, module])
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(GRAPH):
        visit(module, [])


def _imports(path) -> set:
    tree = ast.parse(path.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return imported | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_the_contract_imports_only_the_dataset_spec_and_nothing_heavy():
    assert _imports(ROOT / "contract.py") <= {"dataclasses", "os", "datasets"}
    # The spec's loader: the standard library and YAML, nothing of the project.
    assert _imports(ROOT / "datasets" / "spec.py") <= {
        "dataclasses",
        "datetime",
        "functools",
        "hashlib",
        "json",
        "math",
        "os",
        "yaml",
    }


@pytest.mark.parametrize("package", ["components", "transform", "trainer", "compat"])
def test_user_code_imports_only_the_contract_the_overrides_and_its_own_package(package):
    allowed = {"contract", "datasets"} | ({"compat"} if package != "compat" else set())
    for module, targets in GRAPH.items():
        if module.split(".")[0] == package:
            others = {t for t in targets if t.split(".")[0] not in allowed | {package}}
            assert others == set(), module


def test_nothing_outside_the_trainer_imports_its_task_module():
    # TFX loads trainer.task by dotted path; the rest of the project takes its names from the contract.
    assert "trainer.task" in GRAPH and "trainer.model" in GRAPH["trainer.task"]
    importers = {m for m, targets in GRAPH.items() if "trainer.task" in targets}
    assert {m for m in importers if not m.startswith("trainer.")} == set()


def test_test_modules_import_no_other_test_module():
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        # tests.support, the PostgreSQL server (tests.postgres) and the engine harness (the tests.beam_cluster
        # package) are helpers, not test modules.
        imported = [n for n in names if n.startswith("tests.")]
        helpers = [
            n
            for n in imported
            if n in ("tests.support", "tests.postgres") or n.split(".")[:2] == ["tests", "beam_cluster"]
        ]
        assert imported == helpers, path.name


# contract.py and the dataset spec's loader it reads the default spec with.
CONTRACT = ("contract", "datasets", "datasets.spec")


def test_each_component_is_fingerprinted_with_the_modules_it_loads():
    loaded = {c: fingerprint.component_closure(m, GRAPH) for c, m in cfg.COMPONENT_CODE.items()}
    packages = {"components", "components.lib"}
    assert loaded[cfg.EXAMPLE_GEN] == packages | {
        *CONTRACT,
        "compat",
        "compat.beam",
        "components.example_gen",
        "components.example_gen.executor",
        "components.example_gen.history",
        "components.example_gen.inputs",
        "components.example_gen.records",
        "components.example_gen.time_split",
        "components.lib.csv_contract",
        "components.lib.rejection",
        "components.lib.serving",
        "components.lib.spans",
        "components.lib.wire",
        "datasets.history",
    }
    assert loaded[cfg.GATE] == packages | {
        *CONTRACT,
        "components.anomalies_gate",
        "components.anomalies_gate.component",
        "components.lib.drift",
        "components.lib.rejection",
        "components.lib.serving",
    }
    assert loaded[cfg.STATISTICS_GEN] == packages | {
        "compat",
        "compat.tfdv",
        "components.statistics_gen",
        "components.statistics_gen.component",
        "components.lib.examples_io",
    }
    # ServingBaseline's code and the Evaluator's (its extractors and the metric classes its EvalConfig names): one
    # fingerprint, since the Evaluator has none of its own and re-runs when ServingBaseline's output changes.
    assert loaded[cfg.SERVING_BASELINE] == packages | {
        *CONTRACT,
        "compat",
        "compat.tfma",
        "compat.tfma_columns",
        "components.lib.serving",
        "components.serving_baseline",
        "components.serving_baseline.component",
        "components.evaluator",
        "components.evaluator.component",
        "components.evaluator.extractors",
        "components.evaluator.in_process",
        "components.evaluator.metrics",
        "components.lib.card_precision",
        "components.lib.examples_io",
    }
    assert loaded[cfg.PUSHER] == packages | {
        *CONTRACT,
        "components.pusher",
        "components.pusher.component",
        "components.pusher.model_card",
        "components.pusher.warmup",
        "components.lib.drift",
        "components.lib.serving",
        "components.lib.tfma_results",
    }
    # Transform: the preprocessing_fn and the executor that reads its examples.
    assert loaded[cfg.TRANSFORM] == packages | {
        *CONTRACT,
        "compat",
        "compat.tfx_transform",
        "transform",
        "transform.preprocessing",
        "components.transform",
        "components.transform.component",
        "components.lib.examples_io",
    }
    assert {
        *CONTRACT,
        "compat.tensorflow",
        "trainer.task",
        "trainer.model",
        "trainer.threshold",
        "trainer.hparams",
        "trainer.tuning",
    } <= loaded[cfg.TRAINER]
    # The Tuner's trials are the Trainer's training: the same module, so the same code.
    assert cfg.COMPONENT_CODE[cfg.TUNER] == cfg.COMPONENT_CODE[cfg.TRAINER] and loaded[cfg.TUNER] == loaded[cfg.TRAINER]
    # The dotted paths TFX loads are the modules fingerprinted.
    assert cfg.PREPROCESSING_FN.startswith(cfg.COMPONENT_CODE[cfg.TRANSFORM][0] + ".")
    assert cfg.RUN_FN.startswith(cfg.COMPONENT_CODE[cfg.TRAINER] + ".")
    assert cfg.TUNER_FN.startswith(cfg.COMPONENT_CODE[cfg.TUNER] + ".")


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory):
    """A copy of the project's code in another folder, and its fingerprints (the tests that edit it undo the edit)."""
    root = tmp_path_factory.mktemp("project")
    for name in fingerprint.PACKAGES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / f"{name}.py", root / f"{name}.py")
    return root, fingerprint.code_versions(root)


@pytest.mark.parametrize(
    ("edited", "changed"),
    [
        ("components/example_gen/records.py", {cfg.EXAMPLE_GEN}),
        ("components/lib/csv_contract.py", {cfg.EXAMPLE_GEN}),
        ("components/anomalies_gate/component.py", {cfg.GATE}),
        (
            "components/__init__.py",
            {cfg.EXAMPLE_GEN, cfg.STATISTICS_GEN, cfg.GATE, cfg.TRANSFORM, cfg.SERVING_BASELINE, cfg.PUSHER},
        ),
        ("components/statistics_gen/component.py", {cfg.STATISTICS_GEN}),
        ("components/lib/examples_io.py", {cfg.STATISTICS_GEN, cfg.TRANSFORM, cfg.SERVING_BASELINE}),
        ("components/transform/component.py", {cfg.TRANSFORM}),
        ("components/lib/rejection.py", {cfg.EXAMPLE_GEN, cfg.GATE}),
        ("components/lib/spans.py", {cfg.EXAMPLE_GEN}),
        ("components/lib/drift.py", {cfg.GATE, cfg.PUSHER}),
        ("components/pusher/component.py", {cfg.PUSHER}),
        ("components/serving_baseline/component.py", {cfg.SERVING_BASELINE}),
        ("components/evaluator/extractors.py", {cfg.SERVING_BASELINE}),
        ("components/evaluator/in_process.py", {cfg.SERVING_BASELINE}),
        ("compat/tfma_columns.py", {cfg.SERVING_BASELINE}),
        ("compat/tfma.py", {cfg.SERVING_BASELINE}),
        (
            "compat/__init__.py",
            {cfg.EXAMPLE_GEN, cfg.STATISTICS_GEN, cfg.TRANSFORM, cfg.TUNER, cfg.TRAINER, cfg.SERVING_BASELINE},
        ),
        ("compat/tensorflow.py", {cfg.TUNER, cfg.TRAINER}),
        ("components/lib/serving.py", {cfg.EXAMPLE_GEN, cfg.GATE, cfg.SERVING_BASELINE, cfg.PUSHER}),
        ("components/pusher/warmup.py", {cfg.PUSHER}),
        ("transform/preprocessing.py", {cfg.TRANSFORM}),
        ("trainer/model.py", {cfg.TUNER, cfg.TRAINER}),
        ("trainer/tuning.py", {cfg.TUNER, cfg.TRAINER}),
        ("contract.py", set(cfg.COMPONENT_CODE) - {cfg.STATISTICS_GEN}),  # statistics follow the schema, not it
        ("pipeline/definition/pipeline.py", set()),
        ("pipeline/report/figures.py", set()),
    ],
)
def test_a_code_change_changes_exactly_the_fingerprints_of_the_components_that_run_it(edited, changed, project_copy):
    root, before = project_copy
    original = (root / edited).read_text()
    try:
        with open(root / edited, "a") as f:
            f.write("\n# an edit\n")
        after = fingerprint.code_versions(root)
    finally:
        (root / edited).write_text(original)
    assert {c for c in before if before[c] != after[c]} == changed


def test_the_paths_do_not_count_only_names_and_contents(project_copy):
    root, before = project_copy
    # By default, the code where it is imported from.
    assert before == fingerprint.code_versions(ROOT) == fingerprint.code_versions()
    assert fingerprint.code_versions(root) == before  # whichever edits ran before this were undone


def test_every_fingerprint_reaches_its_components_properties():
    from pipeline.definition.pipeline import create_pipeline  # TFX

    versions = {c: f"v-{c}" for c in cfg.COMPONENT_CODE}
    config = cfg.PipelineConfig(
        pipeline_root="/r", serving_dir="/s", data_root="/d", data_pattern="*.csv", schema_path="/x.pbtxt",
        code_versions=versions, tune_trials=2,
    )  # fmt: skip
    components = {c.id: c for c in create_pipeline(config).components}
    for component, version in versions.items():
        properties = str(components[component].exec_properties)
        assert version in properties, component
        # ... and in no other component's, so that a change re-runs only what runs that code; except that the code
        # which shapes the model is part of its training identity, which ServingBaseline and the Pusher compare.
        others = {c for c, node in components.items() if c != component and version in str(node.exec_properties)}
        identity = {cfg.SERVING_BASELINE, cfg.PUSHER} if component in cfg.TRAINING_CODE else set()
        assert others == identity, component


def test_the_fingerprinted_code_is_what_the_image_installs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name in fingerprint.PACKAGES:
        copied = f"COPY {name}.py" if (ROOT / f"{name}.py").is_file() else f"COPY {name}/ {name}/"
        assert copied in dockerfile, name
    assert Path(ROOT / "setup.py").read_text().count('py_modules=["contract"]') == 1


def _loaded_in_a_fresh_interpreter(imports: str, names: tuple[str, ...]) -> list[str]:
    """Which of names are in sys.modules after `import {imports}` in a new interpreter, where nothing else has
    imported them first."""
    import subprocess
    import sys

    code = f"import sys, {imports}; print(repr([m for m in {names!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["pipeline.scoring.predict", "pipeline.runners.replay", "pipeline.cli"])
def test_scoring_replay_and_the_command_line_start_without_the_pipelines_stack(module):
    """predict and replay read CSV through components.lib.csv_contract alone; the CLI imports the stack only once a
    command needs it. Checked in a fresh interpreter, where nothing else has imported it first."""
    heavy = ("apache_beam", "tfx", "tensorflow_model_analysis", "tensorflow_transform", "tensorflow")
    assert _loaded_in_a_fresh_interpreter(module, heavy) == []
