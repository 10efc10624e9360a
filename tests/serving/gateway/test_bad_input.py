"""Bad input is a 4xx with a message that says what is wrong (never a 5xx, never an engine call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from relmodel.serving.gateway.schemas import MAX_ATTR_VALUE_CHARS, MAX_ATTRIBUTES, MAX_QUERY_CHARS
from tests.serving.conftest import write_config

ITEM = {"id": "a", "title": "red shoe"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"query": "red shoe", "items": []}, "items"),
        ({"query": "", "items": [ITEM]}, "query"),
        ({"query": "q" * (MAX_QUERY_CHARS + 1), "items": [ITEM]}, "at most"),
        ({"query": "red shoe", "items": [{"id": "a"}]}, "title"),
        ({"query": "red shoe", "items": [{"id": 5, "title": "x"}]}, "id"),
        ({"query": "red shoe", "items": "a"}, "items"),
        ({"query": "red shoe", "items": [ITEM], "beta": 1.5}, "beta"),
        ({"query": "red shoe", "items": [ITEM], "beta": "high"}, "beta"),
        ({"query": "red shoe", "items": [ITEM, ITEM]}, "unique"),
        ({"query": "red shoe", "items": [{**ITEM, "price": 3}]}, "price"),
        ({"items": [ITEM]}, "query"),
    ],
)
def test_invalid_bodies_are_422(gateway: Callable[..., Any], body: dict[str, Any], fragment: str) -> None:
    with gateway() as url:
        response = httpx.post(f"{url}/v1/relevance/score", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and fragment in error["message"]


def test_bad_json_is_422(gateway: Callable[..., Any]) -> None:
    with gateway() as url:
        response = httpx.post(f"{url}/v1/relevance/score", content=b"{oops",
                              headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["error"]["message"]


def test_too_many_items_names_the_limit(gateway: Callable[..., Any], config_file: Any, grade_ids: list[int]) -> None:
    write_config(config_file, grade_ids, max_items_per_request=3)
    items = [{"id": str(i), "title": f"item {i}"} for i in range(4)]
    with gateway() as url:
        response = httpx.post(f"{url}/v1/relevance/score", json={"query": "q", "items": items})
    assert response.status_code == 422
    assert "4 > max_items_per_request 3" in response.json()["error"]["message"]


def test_prompt_longer_than_the_model_is_422(gateway: Callable[..., Any]) -> None:
    attributes = {f"k{i}": "lorem ipsum " * (MAX_ATTR_VALUE_CHARS // 12) for i in range(MAX_ATTRIBUTES)}
    with gateway() as url:
        response = httpx.post(f"{url}/v1/relevance/score",
                              json={"query": "q", "items": [{**ITEM, "attributes": attributes}]}, timeout=60)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "engine_rejected_input" and "maximum context length" in error["message"]
