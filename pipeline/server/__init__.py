"""The model server: KServe's Python model server over the pushed version that serving/ designates, speaking TF
Serving's REST API and the Open Inference Protocol (V2). It runs in the serving environment (requirements-serve.lock:
KServe and TensorFlow, no TFX); `fraud-pipeline serve` starts it there (docs/serving.md)."""
