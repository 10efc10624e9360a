"""Worker benchmarks (prints figures; bounded; starts and stops its own Redis and workers).

    .venv/bin/python bench/workers.py [--pairs 96] [--skip-sampling]

1. RAG CoT generation throughput with 1 vs 2 Celery worker processes (concurrency 1 each) against a
   FAKE OpenAI-compatible teacher on 127.0.0.1 with 200-400 ms per call (the teacher is an outside
   service; everything else is real: redis-server, `celery worker`, the cot step). Goal: >= 1.8x.
2. pass@N sampling rows/s with the sampling shard function on a tiny model: one shard of all rows
   (batched generate) vs one row per call.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.tasks.fake_teacher import FakeTeacher  # noqa: E402
from tests.tasks.processes import RedisServer, Worker  # noqa: E402


def cot_throughput(pairs: int, workers: int, root: Path, redis: RedisServer, teacher: FakeTeacher,
                   concurrency: int, shard_size: int) -> float:
    from relmodel.tasks import cot, data

    data_out = root / "data"
    if not (data_out / "train.jsonl").exists():
        data.run({"output": str(data_out), "datasets": {"synthetic": {"seed": 5, "train_size": pairs,
                                                                      "eval_size": 8}}})
    pool = [Worker(f"bench{workers}-{i}", redis.url, root, concurrency=1) for i in range(workers)]
    try:
        for worker in pool:
            worker.wait_ready()
        params = {"output": str(root / f"cot-{workers}w"), "train": str(data_out / "train.jsonl"),
                  "rules": str(data_out / "rules.jsonl"), "shard_size": shard_size,
                  "cot": {"teacher": {"kind": "openai", "endpoint": teacher.url, "model": "fake-good",
                                      "max_concurrency": concurrency}, "retriever": "bm25", "top_k": 3}}
        # Warm-up: every worker process imports the CoT code and builds its retriever once (steady state).
        warm = root / f"warm-{workers}w.jsonl"
        warm.write_text("".join((data_out / "train.jsonl").read_text().splitlines(keepends=True)[: 4 * workers]))
        cot.run({**params, "output": str(root / f"warm-{workers}w"), "train": str(warm), "shard_size": 1})
        started = time.monotonic()
        result = cot.run(params)
        seconds = time.monotonic() - started
    finally:
        for worker in pool:
            worker.stop()
    rate = result["pairs"] / seconds
    print(f"  {workers} worker process(es): {result['pairs']} pairs ({result['accepted']} accepted) "
          f"in {seconds:.2f}s = {rate:.1f} pairs/s")
    return rate


def sampling_rates(rows: int, samples: int, root: Path) -> tuple[float, float]:
    from tests.conftest import corpus, make_cot, make_pairs

    from relmodel.spec import TinyModelSpec
    from relmodel.trainers.base import build_tiny
    from relmodel.trainers.sampling import sample_shard

    pairs = make_pairs(rows)
    model_dir = root / "tiny"
    build_tiny(corpus(pairs), TinyModelSpec(vocab_size=400, hidden_size=48, num_layers=2, num_heads=4, seed=0),
               str(model_dir))
    records = [r.model_dump(mode="json") for r in make_cot(pairs)]
    params: dict[str, Any] = {"model": str(model_dir), "samples": samples, "temperature": 1.0, "top_p": 1.0,
                              "max_new_tokens": 48, "seed": 0, "chat_template": False}
    sample_shard(records[:1], params)  # load (and cache) the policy once, as a worker process does
    started = time.monotonic()
    sample_shard(records, params)
    batched = rows / (time.monotonic() - started)
    started = time.monotonic()
    for record in records:
        sample_shard([record], params)
    single = rows / (time.monotonic() - started)
    return batched, single


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--teacher-concurrency", type=int, default=4, help="teacher calls in flight per shard")
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--sampling-rows", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4, help="N of pass@N")
    parser.add_argument("--skip-sampling", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    with tempfile.TemporaryDirectory(prefix="relmodel-bench-") as tmp:
        root = Path(tmp)
        (root / "redis").mkdir()
        redis = RedisServer(root / "redis")
        redis.start()
        teacher = FakeTeacher(latency=(0.2, 0.4)).start()
        from relmodel.tasks.app import configure

        configure(redis.url)
        try:
            print(f"CoT generation: {args.pairs} pairs, shards of {args.shard_size}, "
                  f"{args.teacher_concurrency} teacher calls in flight per worker, teacher latency 200-400 ms (fake)")
            one = cot_throughput(args.pairs, 1, root, redis, teacher, args.teacher_concurrency, args.shard_size)
            two = cot_throughput(args.pairs, 2, root, redis, teacher, args.teacher_concurrency, args.shard_size)
            print(f"  speed-up 2 vs 1 worker processes: {two / one:.2f}x (goal >= 1.8x)")
        finally:
            teacher.stop()
            redis.stop()
        if not args.skip_sampling:
            print(f"pass@{args.samples} sampling, tiny model, {args.sampling_rows} prompts, 48 new tokens (CPU):")
            batched, single = sampling_rates(args.sampling_rows, args.samples, root)
            print(f"  batched (one shard): {batched:.2f} rows/s; one by one: {single:.2f} rows/s; "
                  f"batching gives {batched / single:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
