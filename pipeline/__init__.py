"""The fraud pipeline: feature contract, config, pipeline definition, runners and CLI."""
