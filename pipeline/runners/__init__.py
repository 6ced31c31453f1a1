"""Runners: the local LocalDagRunner run, the Kubeflow V2 / Vertex compile, spec files, and submission."""
