"""`relmodel serve-engine`: load a model directory and serve it with uvicorn."""

from __future__ import annotations

from pathlib import Path

from relmodel.serving.engine.app import DEFAULT_MAX_LOGPROBS, create_engine_app
from relmodel.serving.engine.runtime import EngineModel


def serve_engine(
    model: str | Path,
    host: str = "0.0.0.0",
    port: int = 8000,
    *,
    served_model_name: str | None = None,
    max_model_len: int | None = None,
    max_logprobs: int = DEFAULT_MAX_LOGPROBS,
    dtype: str = "float32",
    torch_threads: int | None = None,
    log_level: str = "info",
) -> None:
    """Blocking: serve `model` on host:port with vLLM's OpenAI-compatible API until stopped.

    `torch_threads` caps intra-op threads: on a shared node, fewer threads than cores avoids
    oversubscription with the gateway and other pods.
    """
    import torch
    import uvicorn

    if torch_threads:
        torch.set_num_threads(torch_threads)

    engine = EngineModel(model, max_model_len=max_model_len, dtype=dtype)
    app = create_engine_app(engine, served_model_name=served_model_name, max_logprobs=max_logprobs)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
