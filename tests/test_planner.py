import pytest

from relmodel.planner import Observation, Phase, Step, build_pipeline, decide
from relmodel.spec import parse_manifest
from tests.manifests import changed

ROOT = "file:///runs"


def model(**spec_changes):
    return parse_manifest(changed(**{"spec." + k.replace("__", "."): v for k, v in spec_changes.items()}))


def done(plans, upto: Step | None = None, metrics=None):
    observed = {}
    for p in plans:
        if upto is not None and p.step == upto:
            break
        observed[p.step] = Observation(Phase.SUCCEEDED, p.key, metrics=metrics or {"macro_f1": 0.5})
    return observed


def test_pipeline_order_and_outputs():
    plans = build_pipeline(model(), ROOT)
    assert [p.step for p in plans] == list(Step)
    assert all(p.output.startswith("file:///runs/default/tiny/") for p in plans)
    sft = next(p for p in plans if p.step == Step.SFT)
    base = next(p for p in plans if p.step == Step.BASE)
    assert sft.params["model"] == f"{base.output}/model"
    assert sft.params["label_only"] is False


def test_disabled_stages_are_skipped_and_the_policy_chains_through():
    plans = build_pipeline(model(stages__dpo={"enabled": False}, evaluation={"baseline": False}), ROOT)
    steps = [p.step for p in plans]
    assert Step.SAMPLES not in steps and Step.DPO not in steps and Step.BASELINE not in steps
    sft = next(p for p in plans if p.step == Step.SFT)
    difficulty = next(p for p in plans if p.step == Step.DIFFICULTY)
    assert difficulty.params["model"] == f"{sft.output}/model"


def test_a_spec_change_rekeys_only_the_affected_steps():
    before = {p.step: p.key for p in build_pipeline(model(), ROOT)}
    after = {p.step: p.key for p in build_pipeline(model(stages__dpo__beta=0.3), ROOT)}
    changed = {s for s in before if before[s] != after[s]}
    assert changed == {Step.DPO, Step.DIFFICULTY, Step.GRPO, Step.EVAL, Step.SERVE}


def test_keys_are_deterministic():
    assert [p.key for p in build_pipeline(model(), ROOT)] == [p.key for p in build_pipeline(model(), ROOT)]


def test_starts_the_first_unfinished_step_and_waits_while_it_runs():
    m = model()
    plans = build_pipeline(m, ROOT)
    decision = decide(m, plans, done(plans, Step.SFT), now=0)
    assert (decision.action.verb, decision.action.step) == ("start", Step.SFT)
    sft = next(p for p in plans if p.step == Step.SFT)
    running = {**done(plans, Step.SFT), Step.SFT: Observation(Phase.RUNNING, sft.key)}
    decision = decide(m, plans, running, now=0)
    assert (decision.action.verb, decision.action.step, decision.phase) == ("wait", Step.SFT, "Training")
    conditions = {c.type: c for c in decision.conditions}
    assert conditions["DataReady"].status == "True"
    assert conditions["SFTSucceeded"].status == "Unknown"
    assert conditions["Ready"].status == "False"


def test_an_observation_for_an_old_key_does_not_count():
    m = model()
    plans = build_pipeline(m, ROOT)
    stale = done(plans)
    stale[Step.DPO] = Observation(Phase.SUCCEEDED, "oldkey")
    assert decide(m, plans, stale, now=0).action.step == Step.DPO


def test_retries_with_exponential_backoff_then_fails():
    m = model(retries={"limit": 2, "backoffSeconds": 10})
    plans = build_pipeline(m, ROOT)
    sft = next(p for p in plans if p.step == Step.SFT)
    base = done(plans, Step.SFT)

    def after(attempts, now):
        failure = Observation(Phase.FAILED, sft.key, attempts, failed_at=100.0, message="OOMKilled")
        observed = {**base, Step.SFT: failure}
        return decide(m, plans, observed, now=now)

    assert after(1, 105).action.verb == "wait" and after(1, 105).action.not_before == 110
    assert (after(1, 110).action.verb, after(1, 110).action.attempt) == ("start", 1)
    assert after(2, 115).action.verb == "wait"  # backoff doubled: 100 + 20
    assert after(2, 120).action.verb == "start"
    final = after(3, 1000)
    assert final.action.verb == "fail" and "OOMKilled" in final.action.reason and final.phase == "Failed"
    sft_condition = next(c for c in final.conditions if c.type == "SFTSucceeded")
    assert (sft_condition.status, sft_condition.reason) == ("False", "Failed")


def test_a_permanent_failure_is_not_retried():
    m = model(retries={"limit": 5, "backoffSeconds": 10})
    plans = build_pipeline(m, ROOT)
    sft = next(p for p in plans if p.step == Step.SFT)
    failure = Observation(Phase.FAILED, sft.key, 1, failed_at=100.0, message="bad row", permanent=True)
    decision = decide(m, plans, {**done(plans, Step.SFT), Step.SFT: failure}, now=100.0)
    assert decision.action.verb == "fail" and decision.action.reason == "sft failed: bad row"


def test_everything_done_is_ready():
    m = model()
    plans = build_pipeline(m, ROOT)
    decision = decide(m, plans, done(plans), now=0)
    assert decision.action.verb == "done" and decision.phase == "Ready"
    assert all(c.status == "True" for c in decision.conditions)


@pytest.mark.parametrize(
    ("gates", "serving_f1", "passes", "message"),
    [
        ({"minMacroF1": 0.6}, None, False, "below the gate's minimum 0.6000"),
        ({"minMacroF1": 0.4}, None, True, "macro-F1 0.5000"),
        ({"noRegression": True}, 0.55, False, "regresses from 0.5500"),
        ({"noRegression": True, "tolerance": 0.1}, 0.55, True, "macro-F1"),
        ({"noRegression": True}, None, True, "macro-F1"),
    ],
)
def test_gates_stop_before_rollout(gates, serving_f1, passes, message):
    m = model(gates=gates)
    plans = build_pipeline(m, ROOT)
    decision = decide(m, plans, done(plans, Step.SERVE), now=0, serving_macro_f1=serving_f1)
    evaluation = next(c for c in decision.conditions if c.type == "EvalPassed")
    assert message in evaluation.message
    if passes:
        assert (decision.action.verb, decision.action.step) == ("start", Step.SERVE)
    else:
        assert decision.action.verb == "gate" and decision.phase == "GateFailed" and evaluation.status == "False"
