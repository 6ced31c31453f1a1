"""Custom TFX components and executors of the fraud pipeline."""
