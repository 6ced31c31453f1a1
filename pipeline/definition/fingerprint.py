"""Fingerprints of the project code each component runs, read from the source files (no project code is imported).

TFX does not put code loaded by dotted path (or a custom executor's module) into its cache key. The CLI therefore
hashes, per component, the module TFX loads for it and every project module that module imports, directly or
not, and passes the hash in the component's properties: a change to that code re-runs the component, and a change
anywhere else does not.
"""

import hashlib
import importlib.util
import re
from pathlib import Path

from pipeline.definition.config import COMPONENT_CODE

# The project's top-level packages and modules: what counts as project code in an import.
PACKAGES = ("contract", "compat", "datasets", "components", "transform", "trainer", "pipeline")


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


# An import statement at the start of a line or after a ";" (indented or not, so lazy imports inside functions
# count): `import a.b as c, d` or `from a.b import c, d` (its names in parentheses may span lines). Matching the text
# is much faster than walking every file's syntax tree, which was a noticeable part of each run's start; a docstring
# line that
# begins with "import" can only add an edge, and tests/test_architecture_unit.py checks that no import the syntax
# tree holds is missed (one after a ":" on the same line, as in `if x: import y`, would be).
_NAME_AS = r"[A-Za-z_][\w.]*(?:[ \t]+as[ \t]+\w+)?"
_IMPORT_STATEMENT = re.compile(
    r"(?:^|;)[ \t]*from[ \t]+([A-Za-z_][\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n;]*)"
    rf"|(?:^|;)[ \t]*import[ \t]+({_NAME_AS}(?:[ \t]*,[ \t]*{_NAME_AS})*)",
    re.MULTILINE,
)


def imported_names(source: str) -> set[str]:
    """The dotted names a module's source imports: `import a.b` gives a.b, `from a import b` gives a and a.b."""
    names = set()
    for statement in _IMPORT_STATEMENT.finditer(source):
        module, imported, plain = statement.groups()
        if module:
            names.add(module)
            for part in re.sub(r"#[^\n]*", "", imported).strip("()").split(","):
                words = part.split()
                if words:
                    names.add(f"{module}.{words[0]}")
        else:
            names.update(part.split()[0] for part in plain.split(","))
    return names


def _sources(root: Path | None) -> dict[str, bytes]:
    """Dotted module name -> the module's source, each file read once (see module_files)."""
    return {name: path.read_bytes() for name, path in module_files(root).items()}


def _graph(sources: dict[str, bytes]) -> dict[str, set[str]]:
    return {
        name: {t for t in imported_names(source.decode()) if t in sources and t != name}
        for name, source in sources.items()
    }


def imports(root: Path | None = None) -> dict[str, set[str]]:
    """Module -> the project modules it imports (at any depth in the file, lazy imports included)."""
    return _graph(_sources(root))


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
    sources = _sources(root)
    graph = _graph(sources)
    versions = {}
    for component, modules in COMPONENT_CODE.items():
        digest = hashlib.sha256()
        for name in sorted(component_closure(modules, graph)):
            digest.update(name.encode() + b"\0" + sources[name] + b"\0")
        versions[component] = digest.hexdigest()[:16]
    return versions
