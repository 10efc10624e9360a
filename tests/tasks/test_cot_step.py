"""The `cot` step end to end: sharded Celery tasks write cot.jsonl and cot.rejected.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relmodel.data import jsonl
from relmodel.data.schemas import CoTRecord, RejectedCoT
from relmodel.format import parse_completion
from relmodel.spec import CoTSpec, DatasetsSpec, SyntheticDataSpec, TeacherSpec
from relmodel.steps import EXIT_PERMANENT
from relmodel.tasks import cot, data
from relmodel.tasks.cot import TeacherUnavailable
from relmodel.testing.waiting import free_port
from tests.rag.fake_teacher import FakeTeacher


def _data(tmp_path: Path, train_size: int) -> Path:
    out = tmp_path / "data"
    spec = DatasetsSpec(synthetic=SyntheticDataSpec(train_size=train_size, eval_size=8))
    data.run({"output": str(out), "datasets": spec.model_dump(mode="json")})
    return out


def _params(tmp_path: Path, data_dir: Path, spec: CoTSpec, name: str = "cot") -> dict:
    return {"output": str(tmp_path / name), "train": str(data_dir / "train.jsonl"),
            "rules": str(data_dir / "rules.jsonl"), "cot": spec.model_dump(mode="json"), "shard_size": 16}


def test_rule_teacher_run_writes_both_files_and_reports(tmp_path):
    params = _params(tmp_path, _data(tmp_path, 40), CoTSpec(retriever="bm25"))
    result = cot.run(params)
    assert result["teacher"] == "offline-rule-teacher" and result["retriever"] == "bm25"
    assert (result["pairs"], result["accepted"], result["rejected"], result["reasons"]) == (40, 40, 0, {})
    records = jsonl.read_jsonl(str(tmp_path / "cot" / "cot.jsonl"), CoTRecord)
    assert len(records) == 40 and (tmp_path / "cot" / "cot.rejected.jsonl").read_text() == ""
    assert all(parse_completion(r.completion).grade == r.pair.grade for r in records)
    assert len({r.pair.pair_id for r in records}) == 40
    assert cot.run(params)["accepted"] == 40  # finished shards are reused: no duplicated rows
    assert len((tmp_path / "cot" / "cot.jsonl").read_text().splitlines()) == 40


def test_llm_teacher_run_keeps_rejections_with_reasons(tmp_path):
    data_dir = _data(tmp_path, 48)
    with FakeTeacher(rate_limit_first=True) as fake:
        spec = CoTSpec(retriever="bm25", teacher=TeacherSpec(kind="openai", endpoint=fake.url, model="r1",
                                                             max_concurrency=4))
        result = cot.main(["--config-json", json.dumps(_params(tmp_path, data_dir, spec))])
    assert result == 0
    summary = json.loads((tmp_path / "cot" / "result.json").read_text())
    rejected = jsonl.read_jsonl(str(tmp_path / "cot" / "cot.rejected.jsonl"), RejectedCoT)
    accepted = jsonl.read_jsonl(str(tmp_path / "cot" / "cot.jsonl"), CoTRecord)
    assert summary["teacher"] == "openai:r1"
    assert (summary["accepted"], summary["rejected"]) == (len(accepted), len(rejected)) and len(rejected) > 0
    assert sum(summary["reasons"].values()) == len(rejected) and len(accepted) + len(rejected) == 48
    assert {r.reason.split(":")[0] for r in rejected} == set(summary["reasons"])


def test_a_teacher_that_never_succeeds_fails_the_step(tmp_path, capsys):
    data_dir = _data(tmp_path, 8)
    with FakeTeacher(behaviour=lambda prompt: "garbage") as fake:
        spec = CoTSpec(retriever="bm25", teacher=TeacherSpec(kind="openai", endpoint=fake.url, model="r1"))
        # It answered, with garbage: retrying cannot help.
        assert cot.main(["--config-json", json.dumps(_params(tmp_path, data_dir, spec))]) == EXIT_PERMANENT
    err = capsys.readouterr().err
    assert "no acceptable rationale" in err and "'unparsable': 8" in err
    assert not (tmp_path / "cot" / "result.json").exists()


def test_a_teacher_that_is_down_is_worth_a_retry_and_leaves_no_shards(tmp_path):
    data_dir = _data(tmp_path, 8)
    spec = CoTSpec(retriever="bm25", teacher=TeacherSpec(kind="openai", endpoint=f"http://127.0.0.1:{free_port()}/v1",
                                                         model="r1", max_retries=0, timeout_seconds=2))
    with pytest.raises(TeacherUnavailable, match="teacher_error"):
        cot.run(_params(tmp_path, data_dir, spec))
    assert not (tmp_path / "cot" / "shards").exists()
