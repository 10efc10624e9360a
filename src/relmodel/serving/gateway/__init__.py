"""The relevance gateway: CumPT tiers over an OpenAI-compatible engine (vLLM or the CPU engine)."""

from relmodel.serving.gateway.app import create_app, run_gateway
from relmodel.serving.gateway.config import Settings

__all__ = ["Settings", "create_app", "run_gateway"]
