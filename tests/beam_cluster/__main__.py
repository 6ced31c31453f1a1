"""python -m tests.beam_cluster [FOLDER]: starts a local Beam cluster and prints the --beam-arg flags that use it."""

import sys
import time
from pathlib import Path

from tests.beam_cluster import LocalBeamCluster

with LocalBeamCluster(Path(sys.argv[1] if len(sys.argv) > 1 else "beam-cluster").resolve()) as cluster:
    print(" ".join(f"--beam-arg={a}" for a in cluster.beam_args()), flush=True)
    try:
        while all(p.poll() is None for p in cluster.processes):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
