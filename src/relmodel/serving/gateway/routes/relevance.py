"""/v1/relevance: score a query's items into CumPT tiers, or explain one item's grade."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from relmodel.serving.gateway import service
from relmodel.serving.gateway.deps import ConfigDep, EngineDep, MetricsDep, SettingsDep
from relmodel.serving.gateway.schemas import ExplainRequest, ExplainResponse, ScoreRequest, ScoreResponse

ERRORS: dict[int | str, dict[str, str]] = {
    422: {"description": "Invalid input: empty or too many items, oversize text, wrong types, bad JSON."},
    502: {"description": "The engine answered with an error or a malformed response."},
    503: {"description": "The engine is unreachable, or no CumPT config is loaded."},
    504: {"description": "The engine did not answer in time."},
}

router = APIRouter(prefix="/v1/relevance", tags=["relevance"])


@router.post("/score", response_model=None, responses={200: {"model": ScoreResponse}, **ERRORS})
async def score(body: ScoreRequest, config: ConfigDep, engine: EngineDep, settings: SettingsDep,
                metrics: MetricsDep) -> Response:
    """Grade every item (one batched prefill), tier with CumPT and rank Good > Mid > Bad."""
    result = await service.score(body, config, engine, settings, metrics)
    # Serialised once here: FastAPI's response_model path would re-validate every item.
    return Response(result.model_dump_json(by_alias=True), media_type="application/json")


@router.post("/explain", response_model=ExplainResponse, responses=ERRORS)
async def explain(body: ExplainRequest, config: ConfigDep, engine: EngineDep, settings: SettingsDep,
                  metrics: MetricsDep) -> ExplainResponse:
    """Decode the full post-CoT reasoning for one item (slow: offline/debug use only)."""
    return await service.explain(body, config, engine, settings, metrics)
