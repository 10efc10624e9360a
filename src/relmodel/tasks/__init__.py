"""Celery work between training stages: data preparation, RAG CoT generation, pass@N sampling,
difficulty scoring. The local executor runs the same tasks eagerly, in process."""
