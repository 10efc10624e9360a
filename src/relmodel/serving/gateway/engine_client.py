"""Client for the engine's OpenAI-compatible API (vLLM or the CPU engine, indistinguishably).

Scoring asks for exactly what vLLM can return for the four grade tokens: `max_tokens=1`,
`temperature=0`, `logprob_token_ids` = the grade ids (exact logprobs for those ids, vLLM's
extension), `logprobs=N` (required with it; on engines without the extension the grade tokens
are found among the top N), `allowed_token_ids` (the sampled token, always reported, is then a
grade token) and `return_tokens_as_token_ids` so tokens come back as `token_id:<id>` and never
depend on how the tokenizer detokenises a digit. Every failure becomes a typed GatewayError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx

from relmodel.serving.gateway.errors import (
    EngineFailed,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
)

TOKEN_ID_PREFIX = "token_id:"


class EngineClient:
    def __init__(self, base_url: str, *, connect_timeout_s: float, timeout_s: float,
                 max_connections: int = 64, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, limits=limits,
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def healthy(self) -> bool:
        try:
            response = await self._http.get("/health", timeout=httpx.Timeout(2.0))
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def complete(self, body: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        """POST /v1/completions; maps transport and engine errors onto gateway errors."""
        timeout = httpx.Timeout(timeout_s, connect=self.timeout.connect) if timeout_s else self.timeout
        try:
            response = await self._http.post("/v1/completions", json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise EngineUnavailable(f"engine at {self.base_url} did not accept a connection in time") from exc
            raise EngineTimeout(
                f"engine at {self.base_url} did not answer within {timeout.read}s", timeout_s=timeout.read
            ) from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"engine at {self.base_url} is unreachable: {exc!r}") from exc
        payload = _json(response)
        if response.status_code == 400:
            raise EngineRejected(f"the engine refused the input: {_message(payload)}")
        if response.status_code >= 400:
            raise EngineFailed(
                f"engine answered HTTP {response.status_code}: {_message(payload)}", engine_status=response.status_code
            )
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise EngineFailed("engine response has no `choices` list")
        return payload

    async def grade_logprobs(self, model: str, prompts: Sequence[str], grade_ids: Sequence[int],
                             top_logprobs: int) -> list[list[float]]:
        """One batched call: per prompt, the first-token logprobs of the four grade tokens.

        A grade token missing from an engine's answer (possible only on engines without
        `logprob_token_ids`, when it is outside the top N) gets -inf: less than the N-th token's mass.
        """
        body = {
            "model": model,
            "prompt": list(prompts),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": top_logprobs,
            "logprob_token_ids": list(grade_ids),
            "allowed_token_ids": list(grade_ids),
            "return_tokens_as_token_ids": True,
        }
        payload = await self.complete(body)
        choices = sorted(payload["choices"], key=lambda c: int(c.get("index", 0)))
        if len(choices) != len(prompts):
            raise EngineFailed(f"engine returned {len(choices)} choices for {len(prompts)} prompts")
        return [_grade_row(choice, grade_ids) for choice in choices]


def _grade_row(choice: dict[str, Any], grade_ids: Sequence[int]) -> list[float]:
    try:
        top = choice["logprobs"]["top_logprobs"][0]
        by_id = {_token_id(token): float(lp) for token, lp in top.items()}
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise EngineFailed(f"engine response lacks first-token logprobs: {exc!r}") from exc
    row = [by_id.get(i, -math.inf) for i in grade_ids]
    if all(v == -math.inf for v in row):
        raise EngineFailed("engine returned none of the grade tokens' logprobs")
    return row


def _token_id(token: str) -> int:
    if not token.startswith(TOKEN_ID_PREFIX):
        raise ValueError(f"expected 'token_id:<id>' tokens, got {token!r}")
    return int(token[len(TOKEN_ID_PREFIX):])


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"raw": response.text[:200]}


def _message(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:500]
        if "message" in payload:
            return str(payload["message"])[:500]
    return str(payload)[:500]
