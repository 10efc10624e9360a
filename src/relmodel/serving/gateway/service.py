"""The two relevance operations, independent of HTTP: score a query's items, explain one item."""

from __future__ import annotations

import time
from collections import Counter

from relmodel.errors import FormatError
from relmodel.format import build_prompt, leading_grade, parse_completion
from relmodel.labels import Grade
from relmodel.serving.config import CumPTConfig
from relmodel.serving.gateway.config import Settings
from relmodel.serving.gateway.engine_client import EngineClient
from relmodel.serving.gateway.errors import GatewayError, InvalidRequest
from relmodel.serving.gateway.metrics import GatewayMetrics
from relmodel.serving.gateway.schemas import (
    ExplainRequest,
    ExplainResponse,
    GradeProbs,
    Item,
    Rationale,
    ScoredItem,
    ScoreRequest,
    ScoreResponse,
)
from relmodel.serving.gateway.tiering import renormalise, tier_and_rank


def item_prompt(query: str, item: Item) -> str:
    """Query first, then the item: every item of a query shares the prompt prefix."""
    return build_prompt(query, item.title, item.attributes)


async def score(request: ScoreRequest, config: CumPTConfig, engine: EngineClient, settings: Settings,
                metrics: GatewayMetrics) -> ScoreResponse:
    if len(request.items) > config.max_items_per_request:
        raise InvalidRequest(
            f"too many items: {len(request.items)} > max_items_per_request {config.max_items_per_request}; "
            "split the request",
            max_items_per_request=config.max_items_per_request,
        )
    beta = config.beta if request.beta is None else request.beta
    prompts = [item_prompt(request.query, item) for item in request.items]
    start = time.perf_counter()
    try:
        logprobs = await engine.grade_logprobs(config.model, prompts, config.grade_token_ids, settings.top_logprobs)
    except GatewayError as exc:
        metrics.engine_errors.labels(exc.code).inc()
        raise
    finally:
        metrics.engine_latency.labels("score").observe(time.perf_counter() - start)
    probs = renormalise(logprobs)
    grades, expected, order = tier_and_rank(probs, beta)
    items = []
    tier_counts: Counter[str] = Counter()
    for item, p, g, e in zip(request.items, probs.tolist(), grades.tolist(), expected.tolist(), strict=True):
        grade = Grade(g)
        # Values computed here are valid by construction: skip re-validation (hot path, n items).
        items.append(ScoredItem.model_construct(
            id=item.id, probs=GradeProbs.model_construct(p1=p[0], p2=p[1], p3=p[2], p4=p[3]), grade=g,
            tier=grade.tier, expected_grade=min(4.0, max(1.0, e)),
        ))
        tier_counts[grade.tier.value] += 1
    for tier, count in tier_counts.items():
        metrics.tiers.labels(tier).inc(count)
    metrics.items_scored.inc(len(items))
    return ScoreResponse(model=config.model, beta=beta, items=items, ranking=[request.items[i].id for i in order])


async def explain(request: ExplainRequest, config: CumPTConfig, engine: EngineClient, settings: Settings,
                  metrics: GatewayMetrics) -> ExplainResponse:
    body = {
        "model": config.model,
        "prompt": item_prompt(request.query, request.item),
        "max_tokens": settings.explain_max_tokens,
        "temperature": 0.0,
    }
    start = time.perf_counter()
    try:
        payload = await engine.complete(body, timeout_s=settings.explain_timeout_s)
    except GatewayError as exc:
        metrics.engine_errors.labels(exc.code).inc()
        raise
    finally:
        metrics.engine_latency.labels("explain").observe(time.perf_counter() - start)
    choice = payload["choices"][0] if payload["choices"] else {}
    text = str(choice.get("text", ""))
    lead = leading_grade(text)
    rationale, parse_error = None, None
    try:
        parsed = parse_completion(text)
        rationale = Rationale(grade=int(parsed.grade), steps=list(parsed.steps),
                              verdict_grade=int(parsed.verdict_grade) if parsed.verdict_grade else None,
                              consistent=parsed.consistent)
    except FormatError as exc:
        parse_error = str(exc)
    return ExplainResponse(model=config.model, id=request.item.id, text=text,
                           leading_grade=int(lead) if lead else None, rationale=rationale,
                           parse_error=parse_error, finish_reason=choice.get("finish_reason"))
