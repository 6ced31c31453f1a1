"""Run statuses and the exit codes of `fraud-pipeline run` (documented in the README and docs/cli.md)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA_REJECTED = 3
EXIT_NOT_BLESSED = 4
# predict --fail-on-skew: the scores are written, and a feature of the batch is past its skew threshold.
EXIT_SKEW = 5
# outcomes: realized performance on the labels that arrived fell below the blessing floors (time to retrain).
EXIT_BELOW_FLOOR = 6
# The machine stops the command, not the data or the command line: the output folder is read-only or full, or its
# ML Metadata store is broken. The message says what to do; nothing was changed that a re-run does not repair.
EXIT_ENVIRONMENT = 7
ENVIRONMENT_HELP = (
    f"{EXIT_ENVIRONMENT} the output folder is read-only or full, its ML Metadata store is broken, a pushed version's "
    "files are not those pushed, or another command is writing the same file"
)

COMPLETED = "completed"
DATA_REJECTED = "data_rejected"
NOT_BLESSED = "not_blessed"
FAILED = "failed"


def drift_verdict(record: dict) -> str:
    """The drift gate of a run record in a word or two: 'within thresholds', 'accepted' (past, with
    --accept-drift), 'stopped' (past: the run was rejected), or 'not measured' (the run stopped before the
    DistributionValidator)."""
    found = record.get("drift")
    if not found:
        return "not measured"
    if not found["exceeded"]:
        return "within thresholds"
    return "accepted" if found["accepted"] else "stopped"
