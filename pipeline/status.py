"""Run statuses and the exit codes of `fraud-pipeline run` (documented in the README)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA_REJECTED = 3
EXIT_NOT_BLESSED = 4

COMPLETED = "completed"
DATA_REJECTED = "data_rejected"
NOT_BLESSED = "not_blessed"
FAILED = "failed"
