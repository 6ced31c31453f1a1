"""StatisticsGen: TFX's component, its statistics computed in process on the in-process runner."""
