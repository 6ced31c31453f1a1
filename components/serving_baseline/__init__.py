"""ServingBaseline: the model serving now, copied in as the Evaluator's baseline, on every orchestrator."""
