"""`vllm serve` arguments for a RelevanceModel's serving spec (flag names as in vLLM 0.33).

Scoring is prefill-only, so the flags that matter are the ones that make prefill cheap and the
grade-token logprobs available: prefix caching (a query's items share the prompt prefix),
enough `--max-logprobs` for the gateway's `logprobs=N`, raw logprobs (the model's distribution,
not the one bent by `allowed_token_ids`), and the FP8 quantisation the paper serves with.
"""

from __future__ import annotations

from relmodel.spec import ServingSpec

DEFAULT_PORT = 8000
MAX_LOGPROBS = 20  # >= the gateway's top_logprobs setting


def vllm_args(serving_spec: ServingSpec, model_path: str, *, served_model_name: str | None = None,
              port: int = DEFAULT_PORT, max_logprobs: int = MAX_LOGPROBS) -> list[str]:
    """The argv after `vllm` for the engine container: `serve MODEL --flag value ...`."""
    if not model_path:
        raise ValueError("model_path must name the model directory or URI to serve")
    args = [
        "serve", model_path,
        "--host", "0.0.0.0",
        "--port", str(port),
        "--served-model-name", served_model_name or model_path,
        "--dtype", serving_spec.dtype,
        "--max-model-len", str(serving_spec.max_model_len),
        "--gpu-memory-utilization", _num(serving_spec.gpu_memory_utilization),
        "--enable-prefix-caching",
        "--max-logprobs", str(max_logprobs),
        "--logprobs-mode", "raw_logprobs",
        "--generation-config", "vllm",
    ]
    if serving_spec.quantization:
        args += ["--quantization", serving_spec.quantization]
    return args


def _num(value: float) -> str:
    return f"{value:g}"
