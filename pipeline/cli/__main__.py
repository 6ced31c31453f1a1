"""`python -m pipeline.cli`: the fraud-pipeline command."""

import sys

from pipeline.cli import main

sys.exit(main())
