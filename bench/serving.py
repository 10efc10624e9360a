"""Serving benchmark on the tiny model: prints figures, asserts nothing.

    .venv/bin/python bench/serving.py [--items 100] [--rounds 10] [--decode-tokens 256]

Engine and gateway run as real HTTP servers (uvicorn subprocesses on 127.0.0.1). Figures:
  (a) prefill-only scoring vs decoding the full reasoning, same engine, same items (goal >= 20x)
  (b) one batched call for N items vs N single-item calls (goal >= 5x)
  (c) gateway + engine vs engine alone, items/s (goal >= 0.9x)
Every loop is bounded by --rounds and by --max-seconds per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from relmodel.format import build_prompt
from relmodel.modeling import grade_token_ids, load_tokenizer
from relmodel.spec import TinyModelSpec
from relmodel.testing.waiting import free_port
from relmodel.trainers.base import build_tiny, format_corpus

MODEL_NAME = "tiny-bench"
COLORS = ("red", "blue", "black", "green")
PRODUCTS = ("shoe", "boot", "phone", "tablet", "kettle", "teapot", "shirt", "blouse")


def items(n: int) -> list[dict[str, object]]:
    return [{"id": f"i{k}", "title": f"{COLORS[k % 4]} {PRODUCTS[k % 8]} model {k}",
             "attributes": {"color": COLORS[k % 4], "size": str(40 + k % 7)}} for k in range(n)]


@contextmanager
def process(code: str, health_url: str, timeout_s: float = 120) -> Iterator[None]:
    """A Python server subprocess, up once `health_url` answers 200; stopped by its own pid."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up: {code}")
            try:
                if httpx.get(health_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(call: Callable[[], int], rounds: int, max_seconds: float) -> dict[str, float]:
    """Run `call` (returns items done) up to `rounds` times or `max_seconds`; items/s and latency."""
    call()  # warm-up
    latencies, done, start = [], 0, time.perf_counter()
    for _ in range(rounds):
        t0 = time.perf_counter()
        done += call()
        latencies.append(time.perf_counter() - t0)
        if time.perf_counter() - start > max_seconds:
            break
    total = time.perf_counter() - start
    return {"items_per_s": done / total, "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p99_ms": 1000 * float(np.percentile(latencies, 99)), "calls": len(latencies)}


def row(name: str, m: dict[str, float]) -> str:
    return f"  {name:<44} {m['items_per_s']:>10.1f} {m['p50_ms']:>10.1f} {m['p99_ms']:>10.1f} {int(m['calls']):>6}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--decode-tokens", type=int, default=256)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--engine-threads", type=int, default=1, help="torch threads in the engine process")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="relmodel-bench-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, work: Path) -> None:
    model_dir = work / "model"
    query = "red shoe"
    batch = items(args.items)
    corpus = format_corpus() + [build_prompt(query, str(i["title"]), i["attributes"]) for i in batch]  # type: ignore[arg-type]
    build_tiny(corpus, TinyModelSpec(vocab_size=400, max_position_embeddings=1024), str(model_dir))
    grade_ids = grade_token_ids(load_tokenizer(str(model_dir)))
    config = work / "cumpt.json"
    config.write_text(json.dumps({"model": MODEL_NAME, "beta": 0.5, "grade_token_ids": grade_ids,
                                  "max_items_per_request": max(args.items, 200)}))
    prompts = [build_prompt(query, str(i["title"]), i["attributes"]) for i in batch]  # type: ignore[arg-type]
    e_port, g_port = free_port(), free_port()
    engine, gateway = f"http://127.0.0.1:{e_port}", f"http://127.0.0.1:{g_port}"
    engine_code = ("from relmodel.serving.engine import serve_engine; "
                   f"serve_engine({str(model_dir)!r}, '127.0.0.1', {e_port}, served_model_name={MODEL_NAME!r}, "
                   f"torch_threads={args.engine_threads}, log_level='warning')")
    gateway_code = ("from relmodel.serving.gateway import run_gateway; "
                    f"run_gateway({str(config)!r}, {engine!r}, '127.0.0.1', {g_port}, log_level='warning')")
    score_body = {"model": MODEL_NAME, "max_tokens": 1, "temperature": 0, "logprobs": 20,
                  "logprob_token_ids": grade_ids, "allowed_token_ids": grade_ids,
                  "return_tokens_as_token_ids": True}
    client = httpx.Client(timeout=600)

    def engine_score(ps: list[str]) -> Callable[[], int]:
        def call() -> int:
            r = client.post(f"{engine}/v1/completions", json={**score_body, "prompt": ps})
            r.raise_for_status()
            return len(ps)
        return call

    def engine_decode() -> int:
        r = client.post(f"{engine}/v1/completions", json={"model": MODEL_NAME, "prompt": prompts, "temperature": 0,
                                                         "max_tokens": args.decode_tokens, "ignore_eos": True})
        r.raise_for_status()
        return len(prompts)

    def one_by_one() -> int:
        return sum(engine_score([p])() for p in prompts)

    def gateway_score() -> int:
        r = client.post(f"{gateway}/v1/relevance/score", json={"query": query, "items": batch})
        r.raise_for_status()
        return len(batch)

    load = os.getloadavg()[0]
    env_note = f"engine torch threads={args.engine_threads}, cpus={os.cpu_count()}, load avg {load:.1f} at start"
    with process(engine_code, f"{engine}/health"), process(gateway_code, f"{gateway}/healthz"):
        cap = args.max_seconds
        prefill = measure(engine_score(prompts), args.rounds, cap)
        decode = measure(engine_decode, max(1, args.rounds // 5), cap * 4)
        single = measure(one_by_one, max(1, args.rounds // 5), cap)
        via_gateway = measure(gateway_score, args.rounds, cap)
        direct = measure(engine_score(prompts), args.rounds, cap)

    print(f"relmodel serving bench: tiny Llama on CPU, {args.items} items/query, {env_note}")
    print(f"  {'measurement':<44} {'items/s':>10} {'p50 ms':>10} {'p99 ms':>10} {'calls':>6}")
    print(row(f"(a) prefill-only scoring, batch {args.items}", prefill))
    print(row(f"(a) decode {args.decode_tokens} tokens of reasoning, batch {args.items}", decode))
    print(row(f"(b) {args.items} single-item calls (per call of {args.items})", single))
    print(row("(c) engine alone", direct))
    print(row("(c) gateway + engine", via_gateway))
    print("ratios:")
    ratios = [
        ("(a) prefill-only / decode", prefill["items_per_s"] / decode["items_per_s"], "20"),
        ("(b) batched / one call per item", prefill["items_per_s"] / single["items_per_s"], "5"),
        ("(c) gateway+engine / engine alone", via_gateway["items_per_s"] / direct["items_per_s"], "0.9"),
    ]
    for name, value, goal in ratios:
        print(f"  {name:<36} {value:8.2f}x  (goal >= {goal}x)")


if __name__ == "__main__":
    main()
