"""The `samples` step: pass@N sampling of the SFT policy on the CoT prompts, then DPO pairs.

Sampling is sharded Celery work (`run_sharded`: eager in-process locally, workers on a cluster;
each worker loads the policy once). The pair rule then runs over all groups at once, seeded.

    python -m relmodel.tasks.sampling --config params.json
    -> <output>/samples.jsonl (SampleGroup rows), <output>/pairs.jsonl (PreferencePair rows)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from relmodel import storage
from relmodel.data.jsonl import read_jsonl, write_jsonl
from relmodel.data.schemas import CoTRecord, SampleGroup
from relmodel.errors import DataError
from relmodel.modeling import load_tokenizer
from relmodel.steps import step_main
from relmodel.tasks.shards import run_sharded
from relmodel.trainers.sampling import build_preference_pairs, pass_at_k

log = logging.getLogger(__name__)

SHARD_SIZE = 128


def run(params: dict[str, Any]) -> dict[str, Any]:
    records = read_jsonl(params["cot"], CoTRecord)
    if not records:
        raise DataError(f"{params['cot']}: no CoT records to sample from")
    if params.get("max_prompts") and len(records) > params["max_prompts"]:
        records = random.Random(int(params.get("seed", 0))).sample(records, int(params["max_prompts"]))
    output = params["output"]
    run_sharded("relmodel.trainers.sampling:sample_shard", [r.model_dump(mode="json") for r in records],
                params, output, "samples", int(params.get("shard_size", SHARD_SIZE)))
    groups = read_jsonl(storage.join(output, "samples.jsonl"), SampleGroup)
    teacher = _oracle_completions(records, params["model"], int(params["max_new_tokens"]))
    pairs, counts = build_preference_pairs(groups, teacher, int(params["pairs_per_prompt"]),
                                           random.Random(int(params.get("seed", 0))))
    write_jsonl(storage.join(output, "pairs.jsonl"), pairs)
    n = int(params["samples"])
    metrics: dict[str, Any] = {f"pass@{k}": round(pass_at_k(groups, k), 4) for k in range(1, n + 1)}
    unparsable = sum(g is None for group in groups for g in group.grades)
    metrics.update(prompts=len(groups), pairs=len(pairs), unparsable_samples=unparsable, **counts)
    log.info("samples: %s", metrics)
    return metrics


def _oracle_completions(records: Sequence[CoTRecord], model: str, max_new_tokens: int) -> dict[str, str]:
    """The teacher's rationales cut to the samples' token budget: an oracle `chosen` longer than
    every `rejected` would teach DPO a length preference instead of the grade."""
    tokenizer = load_tokenizer(model)
    oracle: dict[str, str] = {}
    for record in records:
        ids = tokenizer(record.completion, add_special_tokens=False)["input_ids"]
        cut = len(ids) > max_new_tokens
        oracle[record.pair.pair_id] = str(tokenizer.decode(ids[:max_new_tokens])) if cut else record.completion
    return oracle


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
