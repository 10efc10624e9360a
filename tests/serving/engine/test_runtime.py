"""The runtime in-process: constraints and batching invariants the HTTP tests rely on."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from relmodel.format import build_prompt
from relmodel.serving.engine import EngineModel, Sampling


def test_allowed_token_ids_restrict_sampling_not_logprobs(engine_model: EngineModel, grade_ids: list[int]) -> None:
    ids = engine_model.encode(build_prompt("q", "item"))
    gen = engine_model.run([ids], Sampling(max_tokens=1, temperature=1.0, seed=3, logprobs=0,
                                           allowed_token_ids=tuple(grade_ids)))[0]
    assert gen.token_ids[0] in grade_ids
    with torch.no_grad():
        raw = torch.log_softmax(engine_model.model(torch.tensor([ids])).logits[0, -1], -1)
    assert abs(gen.steps[0].logprob - float(raw[gen.token_ids[0]])) < 1e-5  # raw_logprobs, not renormalised


def test_max_tokens_one_runs_no_decode(engine_model: EngineModel, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = engine_model.model.generate

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_model.model, "generate", counting)
    engine_model.run([engine_model.encode("a b c")], Sampling(max_tokens=1, temperature=0))
    assert calls == []
    engine_model.run([engine_model.encode("a b c")], Sampling(max_tokens=2, temperature=0))
    assert calls == [1]
