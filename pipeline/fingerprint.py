"""Fingerprints of the project code each component runs, read from the source files (no project code is imported).

TFX does not put code loaded by dotted path (or a custom executor's module) into its cache key. The CLI therefore
hashes, per component, the module TFX loads for it and every project module that module imports, directly or
not, and passes the hash in the component's properties: a change to that code re-runs the component, and a change
anywhere else does not.
"""

import ast
import hashlib
import importlib.util
from pathlib import Path

from pipeline.config import COMPONENT_CODE

# The project's top-level packages and modules: what counts as project code in an import.
PACKAGES = ("contract", "components", "transform", "trainer", "pipeline")


def _imported_from() -> dict[str, Path]:
    """Where this interpreter imports each top-level package or module from (without importing it)."""
    found = {}
    for top in PACKAGES:
        spec = importlib.util.find_spec(top)
        if spec is not None and spec.submodule_search_locations:
            found[top] = Path(next(iter(spec.submodule_search_locations)))
        elif spec is not None and spec.origin:
            found[top] = Path(spec.origin)
    return found


def module_files(root: Path | None = None) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project.

    Args:
      root: a source tree holding the packages; by default each package is found where this interpreter
        imports it from, so the fingerprint is of the code that will run.
    """
    if root is not None:
        tops = {t: root / t if (root / t).is_dir() else root / f"{t}.py" for t in PACKAGES}
    else:
        tops = _imported_from()
    found = {}
    for top, location in tops.items():
        if location.is_file():
            found[top] = location
        for path in sorted(location.rglob("*.py")) if location.is_dir() else []:
            parts = (top, *path.relative_to(location).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(root: Path | None = None) -> dict[str, set[str]]:
    """Module -> the project modules it imports (at any depth in the file, lazy imports included)."""
    files = module_files(root)
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def closure(module: str, graph: dict[str, set[str]]) -> set[str]:
    """The module and every project module it imports, directly or not (a package's __init__ included, since
    importing a.b runs a first)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or name not in graph:
            continue
        seen.add(name)
        todo.extend(graph[name])
        todo.extend(name.rsplit(".", n)[0] for n in range(1, name.count(".") + 1))
    return seen


def component_closure(modules: str | tuple[str, ...], graph: dict[str, set[str]]) -> set[str]:
    """The project modules a component runs: the closure of its module, or of each of its modules."""
    return set().union(*(closure(m, graph) for m in ((modules,) if isinstance(modules, str) else modules)))


def code_versions(root: Path | None = None) -> dict[str, str]:
    """Component id -> a short hash of the source of the code that runs in it (see the module docstring)."""
    files = module_files(root)
    graph = imports(root)
    versions = {}
    for component, modules in COMPONENT_CODE.items():
        digest = hashlib.sha256()
        for name in sorted(component_closure(modules, graph)):
            digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
        versions[component] = digest.hexdigest()[:16]
    return versions
