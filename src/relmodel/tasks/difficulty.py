"""The `difficulty` step: the first GRPO round's prompt pool, scored with the DPO policy.

`prompts_per_round` training prompts are drawn (seeded), each gets G rollouts (sharded Celery
work, one model load per worker), and the band filter + class balance pick the pool.

    python -m relmodel.tasks.difficulty --config params.json
    -> <output>/difficulty.jsonl (every scored prompt), <output>/pool.jsonl (the kept pool)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from relmodel import storage
from relmodel.data.jsonl import read_jsonl, write_jsonl
from relmodel.data.schemas import GradedPair
from relmodel.errors import DataError
from relmodel.steps import step_main
from relmodel.tasks.shards import run_sharded
from relmodel.trainers.difficulty import DifficultyRow, pick_prompts, select_pool

log = logging.getLogger(__name__)

SHARD_SIZE = 256


def run(params: dict[str, Any]) -> dict[str, Any]:
    pairs = read_jsonl(params["train"], GradedPair)
    if not pairs:
        raise DataError(f"{params['train']}: no training pairs")
    seed = int(params.get("seed", 0))
    prompts = pick_prompts(pairs, int(params["prompts_per_round"]), random.Random(seed))
    output = params["output"]
    run_sharded("relmodel.trainers.difficulty:difficulty_shard", [p.model_dump(mode="json") for p in prompts],
                params, output, "difficulty", int(params.get("shard_size", SHARD_SIZE)))
    rows = read_jsonl(storage.join(output, "difficulty.jsonl"), DifficultyRow)
    pool, report = select_pool(rows, bool(params.get("class_balance", True)), random.Random(seed + 1))
    write_jsonl(storage.join(output, "pool.jsonl"), pool)
    log.info("difficulty: scored %d, dropped %d too easy / %d too hard, kept %d (CV %.3f -> %.3f)",
             report["scored"], report["too_easy"], report["too_hard"], report["kept"],
             report["cv_before"], report["cv_after"])
    return report


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
