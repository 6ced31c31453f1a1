"""Results: what a run did, read back from ML Metadata and its artifacts, and the run's verdict."""
