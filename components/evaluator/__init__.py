"""The Evaluator: TFX's, with the project's TFMA extractors, and an empty ServingBaseline read as no baseline."""
