"""Transform: TFX's component, its examples read in process on the in-process runner."""
