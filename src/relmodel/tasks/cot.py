"""Pipeline step `cot`: RAG chain-of-thought for the training pairs, in sharded Celery tasks.

    python -m relmodel.tasks.cot --config params.json   # params: {output, train, rules, cot: CoTSpec}

Each shard retrieves rules, asks the teacher and filters (relmodel.rag.cot); `run_sharded` merges
the shards into <output>/cot.jsonl (CoTRecord) and <output>/cot.rejected.jsonl (RejectedCoT).
A shard already written is not redone, so a re-run or a redelivered task never duplicates rows.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from relmodel import storage
from relmodel.data import jsonl
from relmodel.data.rules import load_rules
from relmodel.data.schemas import GradedPair, Rule
from relmodel.errors import RelmodelError
from relmodel.rag.cot import generate_cot, reason_code
from relmodel.rag.retrieval import Retriever, RetrieverKind, make_retriever
from relmodel.rag.teachers import OpenAITeacher, make_teacher
from relmodel.spec import CoTSpec
from relmodel.steps import step_main
from relmodel.tasks.shards import run_sharded

SHARD_FN = "relmodel.tasks.cot:process_shard"
DEFAULT_SHARD_SIZE = 64
_REASON_PREFIX = "reason."


@functools.lru_cache(maxsize=4)
def _retriever(kind: RetrieverKind, rules_json: str) -> Retriever:
    """One retriever per worker process and rule set (the embedding model loads once)."""
    rules = [Rule.model_validate(r) for r in json.loads(rules_json)]
    return make_retriever(kind, rules)


def _rules_json(rules: Sequence[Rule]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in rules])


def process_shard(rows: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Shard function for run_sharded: rows are GradedPair dicts; params has `rules` and `cot`."""
    spec = CoTSpec.model_validate(params["cot"])
    retriever = _retriever(spec.retriever, _rules_json(load_rules(params["rules"])))
    teacher = make_teacher(spec.teacher)
    try:
        batch = generate_cot([GradedPair.model_validate(r) for r in rows], retriever, teacher,
                             top_k=spec.top_k, max_chars=spec.max_chars)
    finally:
        if isinstance(teacher, OpenAITeacher):
            teacher.close()
    counts: dict[str, int] = {"accepted": len(batch.accepted)}
    for rejected in batch.rejected:
        key = _REASON_PREFIX + reason_code(rejected.reason)
        counts[key] = counts.get(key, 0) + 1
    return {"rows": [r.model_dump(mode="json") for r in batch.accepted],
            "rejected": [r.model_dump(mode="json") for r in batch.rejected], "counts": counts}


class TeacherUnavailable(Exception):
    """No call reached the teacher. Not a RelmodelError: the step exits 1 and is retried."""


def run(params: dict[str, Any]) -> dict[str, Any]:
    spec = CoTSpec.model_validate(params["cot"])
    pairs = jsonl.read_jsonl(params["train"], GradedPair)
    rules = load_rules(params["rules"])
    retriever = _retriever(spec.retriever, _rules_json(rules))  # built here once, so we can report it
    teacher = make_teacher(spec.teacher)
    rows = [p.model_dump(mode="json") for p in pairs]
    totals = run_sharded(SHARD_FN, rows, {"rules": params["rules"], "cot": params["cot"]}, params["output"],
                         name="cot", shard_size=int(params.get("shard_size", DEFAULT_SHARD_SIZE)))
    reasons = {k.removeprefix(_REASON_PREFIX): int(v) for k, v in sorted(totals.items())
               if k.startswith(_REASON_PREFIX)}
    accepted = int(totals.get("accepted", 0))
    if pairs and accepted == 0:
        message = (f"cot: the teacher {teacher.name} produced no acceptable rationale for {len(pairs)} pairs; "
                   f"rejections by reason: {reasons}")
        if set(reasons) == {"teacher_error"}:
            # It never answered (down, unreachable): worth a retry, which must not reuse these shards.
            storage.filesystem(params["output"])[0].rm(storage.join(params["output"], "shards"), recursive=True)
            raise TeacherUnavailable(message)
        raise RelmodelError(message)
    return {"pairs": len(pairs), "accepted": accepted, "rejected": sum(reasons.values()), "reasons": reasons,
            "teacher": teacher.name, "retriever": retriever.name, "rules": len(rules), "top_k": spec.top_k}


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
