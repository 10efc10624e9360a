"""The CPU engine: a vLLM-compatible OpenAI completions server over a transformers model."""

from relmodel.serving.engine.app import create_engine_app
from relmodel.serving.engine.runtime import EngineModel, Sampling
from relmodel.serving.engine.server import serve_engine

__all__ = ["EngineModel", "Sampling", "create_engine_app", "serve_engine"]
