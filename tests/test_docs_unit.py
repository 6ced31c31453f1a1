"""The docs cannot drift from the code: the site builds with --strict, every command line they show is one the CLI
takes, the documented compile commands compile, and every command, test file and page is where the docs say."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli
from tests.support import ROOT, assert_not_blank, open_in_chromium

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def documented_commands(text: str) -> list[str]:
    """The `fraud-pipeline ...` command lines in a page's code blocks (continuation lines joined, comments cut);
    synopses (with [optional] parts or ...) are left out: they are not commands one can run."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ").strip()
            if line.startswith("fraud-pipeline ") and "[" not in line and "..." not in line:
                found.append(line.split(" # ")[0].strip())
    return found


COMMANDS = [(page.name, c) for page in [*PAGES, ROOT / "README.md"] for c in documented_commands(page.read_text())]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built with --strict: a broken link, anchor or docstring reference fails the build."""
    folder = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-d", str(folder)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


def test_the_site_builds_with_strict_links(site):
    assert (site / "kubeflow-vertex" / "index.html").is_file()
    assert (site / "tutorial" / "index.html").is_file()


@pytest.mark.parametrize(
    ("page", "heading", "shown"),
    [
        ("index.html", "fraud-pipeline", "Tutorial"),
        ("tutorial/index.html", "Tutorial: from a clone to a daily schedule", "make run"),
        # Generated from the docstrings: the config's own words and create_pipeline's.
        ("reference/pipeline/index.html", "The pipeline definition", "Everything create_pipeline needs"),
        ("reference/compat/index.html", "Library overrides", "written against"),
    ],
)
def test_a_few_pages_open_in_chromium(site, page, heading, shown, tmp_path):
    view = open_in_chromium(site / page, tmp_path / "page.png")
    assert view.errors == [], view.errors
    assert view.heading.strip().rstrip("¶").strip() == heading
    assert shown in view.text
    assert_not_blank(view.screenshot)


def test_the_docs_show_commands():
    # The check below cannot pass on nothing.
    assert len(COMMANDS) >= 10
    assert {shlex.split(c)[1] for _, c in COMMANDS} >= {"compile", "rehearse", "submit", "predict", "replay"}


@pytest.mark.parametrize(("page", "command"), COMMANDS)
def test_every_documented_command_is_one_the_cli_takes(page, command):
    try:
        args = cli.parser().parse_args(shlex.split(command)[1:])
    except SystemExit as e:
        pytest.fail(f"{page}: `{command}` is refused by the command line (exit {e.code})")
    assert callable(args.handler)


@pytest.mark.parametrize(
    ("page", "command"), [(p, c) for p, c in COMMANDS if shlex.split(c)[1] == "compile"], ids=lambda x: str(x)[:40]
)
def test_every_documented_compile_command_compiles(page, command, tmp_path):
    args = shlex.split(command)[1:]
    args[args.index("--output") + 1] = str(tmp_path / Path(args[args.index("--output") + 1]).name)
    assert cli.main(args) == 0, f"{page}: {command}"
    assert len(list(tmp_path.iterdir())) == 1


def test_every_command_and_page_is_in_the_readme_and_every_test_file_in_the_testing_page():
    readme = (ROOT / "README.md").read_text()
    commands = cli.parser()._subparsers._group_actions[0].choices  # argparse keeps its subcommands there
    for name in commands:
        assert f"| `{name}` |" in readme, name
    for page in PAGES:
        assert f"(docs/{page.name})" in readme or page.name == "index.md", page.name
    testing = (DOCS / "testing.md").read_text()
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        assert f"`{path.name}`" in testing, path.name
