"""`vllm serve` argv for a serving spec."""

from __future__ import annotations

import pytest

from relmodel.serving.vllm import vllm_args
from relmodel.spec import ServingSpec


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_defaults() -> None:
    args = vllm_args(ServingSpec(), "/models/rm", served_model_name="rm")
    assert args[:2] == ["serve", "/models/rm"]
    assert flag(args, "--served-model-name") == "rm"
    assert flag(args, "--dtype") == "auto"
    assert flag(args, "--max-model-len") == "2048"
    assert flag(args, "--gpu-memory-utilization") == "0.9"
    assert flag(args, "--max-logprobs") == "20"
    assert flag(args, "--logprobs-mode") == "raw_logprobs"
    assert "--enable-prefix-caching" in args and "--quantization" not in args


def test_spec_fields_are_rendered() -> None:
    spec = ServingSpec(dtype="bfloat16", quantization="fp8", max_model_len=4096, gpu_memory_utilization=0.85)
    args = vllm_args(spec, "s3://bucket/model", port=9000, max_logprobs=32)
    assert flag(args, "--quantization") == "fp8" and flag(args, "--dtype") == "bfloat16"
    assert flag(args, "--max-model-len") == "4096" and flag(args, "--gpu-memory-utilization") == "0.85"
    assert flag(args, "--port") == "9000" and flag(args, "--max-logprobs") == "32"
    assert flag(args, "--served-model-name") == "s3://bucket/model"
    assert all(isinstance(a, str) for a in args)


def test_model_path_is_required() -> None:
    with pytest.raises(ValueError, match="model_path"):
        vllm_args(ServingSpec(), "")
