"""`python -m pipeline.server`: the model server (pipeline/server/app.py)."""

import sys

from pipeline.server.app import main

sys.exit(main())
