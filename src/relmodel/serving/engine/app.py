"""The CPU engine's HTTP API: vLLM's OpenAI-compatible /v1/models and /v1/completions.

A product feature for kind and laptops (architecture.md): the gateway talks to it exactly as it
talks to a vLLM Deployment. Requests are served one batch at a time: all prompts of a request
go through one prefill; concurrent requests queue on the model lock.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from relmodel.serving.engine.metrics import EngineMetrics
from relmodel.serving.engine.protocol import (
    CompletionLogProbs,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseChoice,
    ErrorInfo,
    ErrorResponse,
    Logprob,
    ModelCard,
    ModelList,
    UsageInfo,
)
from relmodel.serving.engine.runtime import EngineInputError, EngineModel, Generation, Sampling

DEFAULT_MAX_LOGPROBS = 20  # vLLM's --max-logprobs default


def error_response(message: str, status: int = 400, err_type: str = "BadRequestError",
                   param: str | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorInfo(message=message, type=err_type, param=param, code=status))
    return JSONResponse(body.model_dump(), status_code=status)


def create_engine_app(engine: EngineModel, served_model_name: str | None = None,
                      max_logprobs: int = DEFAULT_MAX_LOGPROBS) -> FastAPI:
    """Build the engine app around a loaded model (tests pass one model to several apps)."""
    name = served_model_name or engine.path
    metrics = EngineMetrics(name)
    app = FastAPI(title="relmodel CPU engine (vLLM-compatible)", version="0.1.0")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(str(exc.errors()))

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        card = ModelCard(id=name, root=engine.path, max_model_len=engine.max_model_len)
        return ModelList(data=[card])

    @app.post("/v1/completions", response_model=None, responses={200: {"model": CompletionResponse}})
    async def completions(request: CompletionRequest) -> Any:
        problem = _refuse(request, name, max_logprobs)
        if problem:
            return error_response(problem[0], status=problem[1])
        try:
            prompts = _prompt_ids(engine, request)
            sampling = _sampling(request)
            start = time.perf_counter()
            metrics.running.inc()
            try:
                gens = await run_in_threadpool(engine.run, prompts, sampling)
            finally:
                metrics.running.dec()
        except EngineInputError as exc:
            return error_response(str(exc))
        metrics.latency.observe(time.perf_counter() - start)
        response = _response(engine, request, name, prompts, gens)
        for gen in gens:
            metrics.requests.labels(name, gen.finish_reason).inc()
        metrics.prompt_tokens.inc(response.usage.prompt_tokens)
        metrics.generation_tokens.inc(response.usage.completion_tokens or 0)
        return Response(response.model_dump_json(), media_type="application/json")

    app.state.engine = engine
    app.state.metrics = metrics
    return app


def _refuse(request: CompletionRequest, name: str, max_logprobs: int) -> tuple[str, int] | None:
    """The request-level checks vLLM makes, with its status codes."""
    if request.model is not None and request.model != name:
        return f"The model `{request.model}` does not exist.", 404
    if request.prompt is None or request.prompt in ("", []):
        return "Either prompt or prompt_embeds must be provided and non-empty.", 400
    if request.stream:
        return "Streaming is not supported by the relmodel CPU engine.", 400
    if request.n != 1:
        return "The relmodel CPU engine supports n=1 only.", 400
    max_tokens = request.max_tokens if request.max_tokens is not None else 16
    if max_tokens < 0 or (max_tokens == 0 and not request.echo):
        return f"max_tokens must be at least 1, got {max_tokens}.", 400
    for field, value in (("logprobs", request.logprobs), ("prompt_logprobs", request.prompt_logprobs)):
        if value is not None and value < -1:
            return f"`{field}` must be a positive value or -1.", 400
        if value is not None and value > max_logprobs:
            return f"Requested {field} of {value}, which is greater than max allowed: {max_logprobs}", 400
    if request.logprob_token_ids is not None:
        if not request.logprob_token_ids:
            return "`logprob_token_ids` must not be an empty list.", 400
        if request.logprobs is None:
            return "when using `logprob_token_ids`, `logprobs` must be set.", 400
    if request.temperature is not None and request.temperature < 0:
        return f"temperature must be non-negative, got {request.temperature}.", 400
    if request.top_p is not None and not 0 < request.top_p <= 1:
        return f"top_p must be in (0, 1], got {request.top_p}.", 400
    return None


def _prompt_ids(engine: EngineModel, request: CompletionRequest) -> list[list[int]]:
    prompt = request.prompt
    if isinstance(prompt, str):
        return [engine.encode(prompt, request.add_special_tokens)]
    assert prompt is not None
    if all(isinstance(p, int) for p in prompt):
        return [[int(p) for p in prompt]]  # type: ignore[arg-type]
    if all(isinstance(p, str) for p in prompt):
        return [engine.encode(str(p), request.add_special_tokens) for p in prompt]
    return [list(p) for p in prompt]  # type: ignore[arg-type]


def _sampling(request: CompletionRequest) -> Sampling:
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    return Sampling(
        max_tokens=request.max_tokens if request.max_tokens is not None else 16,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        top_k=request.top_k or 0,
        seed=request.seed,
        stop=stop,
        stop_token_ids=tuple(request.stop_token_ids or ()),
        ignore_eos=request.ignore_eos,
        min_tokens=request.min_tokens,
        allowed_token_ids=tuple(request.allowed_token_ids) if request.allowed_token_ids is not None else None,
        logprobs=request.logprobs,
        logprob_token_ids=tuple(request.logprob_token_ids) if request.logprob_token_ids else None,
        prompt_logprobs=request.prompt_logprobs,
    )


def _response(engine: EngineModel, request: CompletionRequest, name: str,
              prompts: list[list[int]], gens: list[Generation]) -> CompletionResponse:
    choices = []
    completion_tokens = 0
    for index, (ids, gen) in enumerate(zip(prompts, gens, strict=True)):
        text, logprobs = _text_and_logprobs(engine, request, gen)
        if request.echo:
            prompt_text = request.prompt[index] if isinstance(request.prompt, list) and isinstance(
                request.prompt[index], str) else (request.prompt if isinstance(request.prompt, str)
                                                  else engine.decode(ids))
            text = f"{prompt_text}{text}"
        completion_tokens += len(gen.token_ids)
        choices.append(CompletionResponseChoice(
            index=index,
            text=text,
            logprobs=logprobs,
            finish_reason=gen.finish_reason if gen.token_ids else "length",
            stop_reason=gen.stop_reason,
            token_ids=gen.token_ids if request.return_token_ids else None,
            prompt_token_ids=ids if request.return_token_ids else None,
            prompt_logprobs=_prompt_logprobs(engine, gen),
        ))
    prompt_tokens = sum(len(p) for p in prompts)
    usage = UsageInfo(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      total_tokens=prompt_tokens + completion_tokens)
    return CompletionResponse(id=f"cmpl-{request.request_id}", model=name, choices=choices, usage=usage)


def _text_and_logprobs(engine: EngineModel, request: CompletionRequest,
                       gen: Generation) -> tuple[str, CompletionLogProbs | None]:
    """Detokenise, cut at the first stop string (vLLM drops the stop string), build logprobs."""
    ids = gen.token_ids
    eos = engine.eos_id
    visible = ids[:-1] if ids and gen.finish_reason == "stop" and (ids[-1] == eos or gen.stop_reason) else ids
    text = engine.decode(visible, request.skip_special_tokens)
    stops = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    if cut >= 0:
        stop_str = next(s for s in stops if s and text.find(s) == cut)
        text, gen.finish_reason, gen.stop_reason = text[:cut], "stop", stop_str
    if request.logprobs is None:
        return text, None

    def label(token_id: int) -> str:
        return f"token_id:{token_id}" if request.return_tokens_as_token_ids else engine.token_text(token_id)

    out = CompletionLogProbs()
    offset = 0
    for step in gen.steps:
        token = label(step.token_id)
        out.tokens.append(token)
        out.token_logprobs.append(step.logprob)
        out.text_offset.append(offset)
        offset += len(engine.token_text(step.token_id))
        out.top_logprobs.append({label(t): lp for t, lp in step.top.items()})
    return text, out


def _prompt_logprobs(engine: EngineModel, gen: Generation) -> list[dict[int, Logprob] | None] | None:
    if gen.prompt_logprobs is None:
        return None
    return [
        None if entry is None else {
            t: Logprob(logprob=lp, rank=rank, decoded_token=engine.token_text(t)) for t, (lp, rank) in entry.items()
        }
        for entry in gen.prompt_logprobs
    ]
