"""A test file's tier is its name, and the name agrees with the pytest markers that select the tiers: every test
of a *_e2e.py file is marked e2e and no other file holds one; a comparison with TFX's own Beam executor (against_tfx)
is an executor test."""

import ast

from tests.support import ROOT

TIERS = ("_unit", "_executor", "_e2e")


def _markers(decorators) -> set[str]:
    found = set()
    for node in decorators:
        target = node.func if isinstance(node, ast.Call) else node
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute):
            if isinstance(target.value.value, ast.Name) and (target.value.value.id, target.value.attr) == (
                "pytest",
                "mark",
            ):
                found.add(target.attr)
    return found


def markers_of_tests(path) -> dict[str, set[str]]:
    """Each test function of a test file and its markers (its own and the module's pytestmark)."""
    tree = ast.parse(path.read_text())
    module = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            module |= _markers(values)
    return {
        node.name: _markers(node.decorator_list) | module
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and not _is_fixture(node)
    }


def _is_fixture(node) -> bool:
    return any("fixture" in ast.unparse(d) for d in node.decorator_list)


def test_the_reader_sees_markers():
    marked = markers_of_tests(ROOT / "tests" / "test_ingest_e2e.py")
    assert marked and all("e2e" in m for m in marked.values())
    assert (
        "against_tfx"
        in markers_of_tests(ROOT / "tests" / "test_transform_executor.py")[
            "test_the_graph_transforms_every_example_as_tfx_executors_does"
        ]
    )


def test_every_test_file_is_named_by_its_tier_and_its_markers_agree():
    wrong = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tier = next((t for t in TIERS if path.stem.endswith(t)), None)
        if tier is None:
            wrong.append(f"{path.name}: not named by a tier ({', '.join(TIERS)})")
            continue
        for test, markers in markers_of_tests(path).items():
            if ("e2e" in markers) != (tier == "_e2e"):
                wrong.append(f"{path.name}::{test}: marked {sorted(markers)}")
            if "against_tfx" in markers and tier != "_executor":
                wrong.append(f"{path.name}::{test}: against_tfx outside an executor test file")
    assert wrong == []
