"""The local executor runs the real pipeline: real data generation, real TRL training on a tiny
model, real scoring. These are the slowest tests of the suite (about a minute)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relmodel import storage
from relmodel.cli import app
from relmodel.executors.local import FAILURES_FILE, LocalExecutor, StepEvent
from relmodel.planner import Step
from relmodel.serving.config import CumPTConfig
from relmodel.steps import read_result
from tests.manifests import smoke_manifest


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = f"file://{tmp_path_factory.mktemp('runs')}"
    events: list[StepEvent] = []
    model = smoke_manifest()
    executor = LocalExecutor(model, root, listener=events.append)
    decision = executor.run()
    return executor, decision, events


@pytest.mark.slow
def test_the_whole_pipeline_runs_to_ready(finished_run):
    executor, decision, events = finished_run
    assert decision.action.verb == "done", decision
    assert decision.phase == "Ready"
    assert [e.step for e in events if e.status == "succeeded"] == [p.step for p in executor.pipeline]
    outputs = {p.step: p.output for p in executor.pipeline}
    metrics = json.loads(storage.read_text(f"{outputs[Step.EVAL]}/metrics.json"))
    assert set(metrics["rows"]) == {"label-only SFT", "CoT-SFT", "+DPO", "+GRPO"}
    assert metrics["serve_row"] == "+GRPO"
    for row in metrics["rows"].values():
        assert 0.0 <= row["cumpt"]["macro_f1"] <= 1.0
        assert sum(map(sum, row["cumpt"]["confusion"])) == metrics["eval_pairs"]
    report = storage.read_text(f"{outputs[Step.EVAL]}/report.md")
    assert "| +GRPO | CumPT" in report and "beta_sweep.png" in report
    assert storage.exists(f"{outputs[Step.EVAL]}/confusion.png")
    config = CumPTConfig.model_validate_json(storage.read_text(f"{outputs[Step.SERVE]}/cumpt.json"))
    assert config.beta == metrics["beta"] and config.model.endswith("/model")


@pytest.mark.slow
def test_a_second_run_reuses_every_step(finished_run):
    executor, _, _ = finished_run
    events: list[StepEvent] = []
    again = LocalExecutor(executor.model, executor.root, listener=events.append)
    assert again.run().phase == "Ready"
    assert {e.status for e in events} == {"skipped"}


@pytest.mark.slow
def test_relmodel_score_writes_grade_and_tier_per_pair(finished_run, tmp_path):
    executor, _, _ = finished_run
    outputs = {p.step: p.output for p in executor.pipeline}
    pairs = Path(outputs[Step.DATA].removeprefix("file://")) / "eval.jsonl"
    out = tmp_path / "scored.jsonl"
    result = CliRunner().invoke(app, ["score", "--model", f"{outputs[Step.GRPO]}/model",
                                      "--input", str(pairs), "--output", str(out), "--beta", "0.5"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(pairs.read_text().splitlines())
    for row in rows:
        assert abs(sum(row["probs"].values()) - 1.0) < 1e-4
        assert row["tier"] == {4: "Good", 3: "Good", 2: "Mid", 1: "Bad"}[row["grade"]]


def test_a_missing_data_file_fails_at_once_with_a_clear_message(tmp_path):
    model = smoke_manifest(**{
        "spec.datasets": {"train": f"file://{tmp_path}/nope.jsonl", "eval": f"file://{tmp_path}/nope.jsonl"},
        "spec.retries": {"limit": 1, "backoffSeconds": 0},
    })
    events: list[StepEvent] = []
    executor = LocalExecutor(model, f"file://{tmp_path}/runs", listener=events.append)
    decision = executor.run()
    assert decision.action.verb == "fail" and decision.action.step == Step.DATA
    # Bad input is a permanent failure: retrying cannot make the file appear, so no retries.
    assert "no such file" in decision.action.reason and "attempts" not in decision.action.reason
    assert [e.status for e in events] == ["started", "failed"]
    data = executor.pipeline[0]
    assert read_result(data.output) is None
    assert sorted(p.name for p in Path(data.output.removeprefix("file://")).iterdir()) == [FAILURES_FILE,
                                                                                           "params.json"]


def test_cli_refuses_a_bad_manifest_with_the_field_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: relmodel.dev/v1alpha1\nkind: RelevanceModel\nmetadata: {name: x}\n"
                   "spec: {baseModel: {tiny: {}}, datasets: {synthetic: {}}, stages: {grpo: {groupSize: 0}}}\n")
    result = CliRunner().invoke(app, ["run", str(bad), "--root", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "spec.stages.grpo.groupSize" in result.output
    assert not (tmp_path / "runs").exists()
