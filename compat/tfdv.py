"""TensorFlow Data Validation: how many distinct values its in-memory statistics count exactly.

Replaces: nothing is replaced; it reads TFDV's private `stats_impl._DEFAULT_MG_SKETCH_SIZE`, the size of the
Misra-Gries sketch `generate_statistics_in_memory` keeps for top values.
Why: components/statistics_gen computes a split's statistics in this process as TFDV's in-memory path does; up to this
many distinct values its top values are exact, as TFX's Beam path computes them, and past it the component leaves the
split to TFX's executor.
Compared with TFX's own path by: tests/test_statistics_gen_executor.py (the in-process statistics against TFX's
executor's, and the limit itself).
"""

from tensorflow_data_validation.statistics import stats_impl

import compat

DISTRIBUTIONS = ("tensorflow-data-validation",)


def exact_distinct_values() -> int:
    """TFDV's sketch size where TFDV is the version this was written against, else 0 (nothing is exact: every split
    with a string feature goes to TFX's executor)."""
    if not compat.supported("tfdv", *DISTRIBUTIONS):
        return 0
    return stats_impl._DEFAULT_MG_SKETCH_SIZE
