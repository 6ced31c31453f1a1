"""Installs the fraud pipeline's packages and the `fraud-pipeline` console command."""

from setuptools import find_packages, setup

setup(
    name="fraud-pipeline",
    version="0.1.0",
    description="TFX pipeline for imbalanced classification, on the credit-card fraud data",
    python_requires=">=3.10,<3.11",
    # contract.py is the one module every layer shares; datasets/ holds the dataset specs and their loader; the
    # packages are the user code TFX loads (components/, transform/, trainer/) and the orchestration around it
    # (pipeline/ and its subpackages). The specs and schemas are read from the source tree (an editable install).
    py_modules=["contract"],
    packages=find_packages(
        include=[
            f"{p}{s}"
            for p in ("compat", "datasets", "pipeline", "components", "transform", "trainer")
            for s in ("", ".*")
        ]
    ),
    # The dataset specs and their schemas are read at import (contract.py loads the default spec): they ship with the
    # package, so Beam's remote workers, which install it from the sdist that --setup_file builds, have them too.
    package_data={"datasets": ["*/*.yaml", "*/*.pbtxt"]},
    # The exact versions are pinned in requirements.lock; these are the direct dependencies.
    install_requires=[
        "tfx==1.16.0",
        "apache-beam[gcp]==2.59.0",
        "tensorflow==2.16.2",
        "tf-keras~=2.16.0",
        "kfp==2.5.0",
        "protobuf==3.20.3",
        # The run report's figures.
        "matplotlib>=3.8,<3.10",
        # Beam builds the sdist it stages for remote workers (--setup_file) with it, when it is there.
        "build",
        # The dataset specs (datasets/spec.py); kfp requires it too.
        "PyYAML>=6",
        # The online store of the history features on PostgreSQL (pipeline/online_store); SQLite is Python's own.
        "psycopg[binary]>=3.2,<3.3",
    ],
    # playwright drives the system's Chromium in the report's browser test; mkdocs builds the documentation site;
    # uv installs the lock (scripts/bootstrap-venv), so `make lock` pins it with the rest. pytest before 9: pytest 9
    # keeps node ids where pytest-xdist 3.8 cannot add its group to them, and `make test` runs on xdist's groups.
    extras_require={
        "dev": [
            "pytest<9",
            "pytest-xdist",
            "ruff",
            "playwright",
            "mkdocs==1.6.1",
            "mkdocs-material",
            "mkdocstrings[python]",
            # mkdocstrings 1.0 highlights code with the pymdown-extensions 10 API (12 changed Highlight's arguments).
            "pymdown-extensions<11",
            "uv",
            "atheris",
        ]
    },
    entry_points={"console_scripts": ["fraud-pipeline=pipeline.cli:console"]},
)
