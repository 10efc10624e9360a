"""The CPU engine over real HTTP: vLLM's request and response shapes, and its refusals."""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest

from relmodel.format import build_prompt
from relmodel.serving.engine import EngineModel
from tests.serving.conftest import MODEL_NAME

PROMPTS = [
    build_prompt("red shoe", "red shoe model 1", {"color": "red"}),
    build_prompt("red shoe", "blue tablet model 2 with a much longer title", {"color": "blue"}),
    build_prompt("red shoe", "red boot"),
]
COMPLETION_KEYS = {"id", "object", "created", "model", "choices", "usage"}
CHOICE_KEYS = {"index", "text", "logprobs", "finish_reason", "stop_reason"}


def post(url: str, **body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"model": MODEL_NAME, **body}, timeout=60)


def scoring_body(grade_ids: list[int], prompts: list[str] | str = PROMPTS) -> dict[str, object]:
    return {"prompt": prompts, "max_tokens": 1, "temperature": 0, "logprobs": 5,
            "logprob_token_ids": grade_ids, "allowed_token_ids": grade_ids, "return_tokens_as_token_ids": True}


def test_models_lists_the_served_name(engine_url: str) -> None:
    body = httpx.get(f"{engine_url}/v1/models").json()
    assert body["object"] == "list"
    card = body["data"][0]
    assert card["id"] == MODEL_NAME and card["object"] == "model" and card["max_model_len"] > 0


def test_health_and_metrics(engine_url: str, grade_ids: list[int]) -> None:
    assert httpx.get(f"{engine_url}/health").status_code == 200
    post(engine_url, **scoring_body(grade_ids, PROMPTS[0]))
    text = httpx.get(f"{engine_url}/metrics").text
    assert "vllm:prompt_tokens_total" in text and "vllm:e2e_request_latency_seconds_count" in text


def test_scoring_response_has_vllm_shape(engine_url: str, grade_ids: list[int]) -> None:
    response = post(engine_url, **scoring_body(grade_ids))
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= COMPLETION_KEYS and body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-") and body["model"] == MODEL_NAME
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    for choice in body["choices"]:
        assert set(choice) >= CHOICE_KEYS and choice["finish_reason"] == "length"
        logprobs = choice["logprobs"]
        assert set(logprobs) == {"text_offset", "token_logprobs", "tokens", "top_logprobs"}
        assert len(logprobs["tokens"]) == len(logprobs["top_logprobs"]) == 1
        # logprob_token_ids: exactly the grade tokens (the sampled one is one of them, allowed_token_ids).
        top = logprobs["top_logprobs"][0]
        assert set(top) == {f"token_id:{i}" for i in grade_ids}
        assert logprobs["tokens"][0] in top and choice["text"] in "1234"
        assert all(v <= 0 for v in top.values())
    usage = body["usage"]
    assert usage["completion_tokens"] == 3 and usage["total_tokens"] == usage["prompt_tokens"] + 3


def test_top_logprobs_without_token_ids_are_the_top_n(engine_url: str) -> None:
    body = post(engine_url, prompt=PROMPTS[0], max_tokens=1, temperature=0, logprobs=3).json()
    top = body["choices"][0]["logprobs"]["top_logprobs"][0]
    assert 1 <= len(top) <= 4  # top 3 plus the sampled token (greedy: it is the top one)
    assert body["choices"][0]["logprobs"]["token_logprobs"][0] == pytest.approx(max(top.values()))


def test_batched_scoring_equals_one_prompt_at_a_time(engine_url: str, grade_ids: list[int]) -> None:
    def rows(prompts: list[str] | str) -> list[list[float]]:
        choices = post(engine_url, **scoring_body(grade_ids, prompts)).json()["choices"]
        return [[c["logprobs"]["top_logprobs"][0][f"token_id:{i}"] for i in grade_ids] for c in choices]

    batched = rows(PROMPTS)
    single = [rows(p)[0] for p in PROMPTS]
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_logprobs_equal_the_scorer(engine_url: str, grade_ids: list[int], engine_model: EngineModel) -> None:
    """Renormalised engine logprobs == relmodel.scoring's four-way softmax for the same prompts."""
    from relmodel.scoring import GradeScorer

    scorer = GradeScorer.from_model(engine_model.model, engine_model.tokenizer)
    expected = scorer.score_prompts(PROMPTS)
    choices = post(engine_url, **scoring_body(grade_ids)).json()["choices"]
    lps = np.array([[c["logprobs"]["top_logprobs"][0][f"token_id:{i}"] for i in grade_ids] for c in choices])
    probs = np.exp(lps) / np.exp(lps).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_generation_decodes_many_tokens(engine_url: str) -> None:
    body = post(engine_url, prompt=PROMPTS[:2], max_tokens=12, temperature=0, logprobs=1, ignore_eos=True).json()
    for choice in body["choices"]:
        lp = choice["logprobs"]
        assert len(lp["tokens"]) == 12 and choice["finish_reason"] == "length"
        assert lp["text_offset"] == sorted(lp["text_offset"])
    assert body["usage"]["completion_tokens"] == 24
    # Greedy decoding is deterministic and does not depend on the batch.
    again = post(engine_url, prompt=PROMPTS[1], max_tokens=12, temperature=0, ignore_eos=True).json()
    assert again["choices"][0]["text"] == body["choices"][1]["text"]


def test_prompt_logprobs_and_token_ids(engine_url: str) -> None:
    body = post(engine_url, prompt=PROMPTS[0], max_tokens=1, prompt_logprobs=1, return_token_ids=True).json()
    choice = body["choices"][0]
    assert choice["prompt_logprobs"][0] is None
    assert len(choice["prompt_logprobs"]) == len(choice["prompt_token_ids"])
    entry = choice["prompt_logprobs"][1]
    token = str(choice["prompt_token_ids"][1])
    assert token in entry and {"logprob", "rank", "decoded_token"} <= set(entry[token])
    assert len(choice["token_ids"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
        ({"prompt": "x", "logprobs": 21}, 400, "max allowed"),
        ({"prompt": ""}, 400, "prompt"),
        ({"prompt": "x", "logprob_token_ids": [1]}, 400, "logprobs"),
        ({"prompt": "x", "model": "other"}, 404, "does not exist"),
        ({"prompt": 5}, 400, "prompt"),
        ({"prompt": "word " * 5000, "max_tokens": 1}, 400, "maximum context length"),
    ],
)
def test_refusals_use_vllm_error_shape(engine_url: str, body: dict[str, object], status: int, fragment: str) -> None:
    response = httpx.post(f"{engine_url}/v1/completions", json={"model": MODEL_NAME, **body}, timeout=60)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["code"] == status
    assert fragment in error["message"]


def test_unknown_fields_are_ignored_like_vllm(engine_url: str) -> None:
    response = post(engine_url, prompt="x", max_tokens=1, some_future_field=True)
    assert response.status_code == 200 and not math.isnan(response.json()["created"])
