"""The pipeline definition: its typed config, create_pipeline, the gates and eval config, exit codes, faults and
code fingerprints; nothing here runs the pipeline."""
