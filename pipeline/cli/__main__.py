"""`python -m pipeline.cli`: the fraud-pipeline command."""

import sys

from pipeline.cli import console

sys.exit(console())
