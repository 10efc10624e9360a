"""Pipeline step `data`: materialise train/eval pairs and the atomic rules for the run.

    python -m relmodel.tasks.data --config params.json   # params: {output, datasets: DatasetsSpec}

Synthetic data is generated from its seed; user data is read as GradedPair JSONL (extra columns
are ignored, a bad row is a DataError naming file:line) and optionally subsampled. Everything is
read and validated before anything is written, so a bad file leaves no partial output. The result
records per-grade and per-query-type counts and the sha256 of each file written (lineage).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from relmodel import storage
from relmodel.data import jsonl, rules, synthetic
from relmodel.data.schemas import GradedPair, Rule
from relmodel.errors import SpecError
from relmodel.spec import DatasetsSpec
from relmodel.steps import step_main

FILES = ("train.jsonl", "eval.jsonl", "rules.jsonl")
SUBSAMPLE_SEED = 0
T = TypeVar("T")


def subsample(rows: Sequence[T], limit: int | None, seed: int = SUBSAMPLE_SEED) -> list[T]:
    """At most `limit` rows, chosen by a fixed seed and kept in their original order."""
    if limit is None or len(rows) <= limit:
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def load_datasets(spec: DatasetsSpec) -> tuple[list[GradedPair], list[GradedPair], list[Rule]]:
    """(train, eval, rules) for a DatasetsSpec; raises DataError on a bad file."""
    if spec.synthetic is not None:
        train, evaluation, kb = synthetic.generate(spec.synthetic)
    else:
        assert spec.train and spec.eval  # guaranteed by DatasetsSpec's validator
        train = jsonl.read_jsonl(spec.train, GradedPair)
        evaluation = jsonl.read_jsonl(spec.eval, GradedPair)
        kb = rules.load_rules(spec.rules)
    return subsample(train, spec.max_train), subsample(evaluation, spec.max_eval), kb


def _counts(pairs: Sequence[GradedPair]) -> dict[str, Any]:
    grades = Counter(str(int(p.grade)) for p in pairs)
    return {"pairs": len(pairs), "queries": len({p.query_id or p.query for p in pairs}),
            "grades": {g: grades.get(g, 0) for g in ("1", "2", "3", "4")},
            "query_types": dict(sorted(Counter(p.query_type for p in pairs).items()))}


def run(params: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = DatasetsSpec.model_validate(params["datasets"])
    except ValidationError as exc:
        raise SpecError(f"datasets: {exc}") from exc
    train, evaluation, kb = load_datasets(spec)
    output = params["output"]
    outputs: tuple[Sequence[BaseModel], ...] = (train, evaluation, kb)
    for name, rows in zip(FILES, outputs, strict=True):
        jsonl.write_jsonl(storage.join(output, name), rows)
    return {
        "source": "synthetic" if spec.synthetic is not None else "files",
        "train": _counts(train),
        "eval": _counts(evaluation),
        "rules": len(kb),
        "sha256": {name: storage.sha256_of(storage.join(output, name)) for name in FILES},
    }


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
