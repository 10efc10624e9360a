"""The `relmodel` command line: run a RelevanceModel locally, score pairs, and start the
platform's processes (operator, workers, gateway, CPU engine)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from relmodel.errors import RelmodelError
from relmodel.models import app as models_app
from relmodel.spec import load_manifest

app = typer.Typer(help="Train and serve reasoning relevance models (TaoSR1).", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console()

Manifest = Annotated[Path, typer.Argument(help="RelevanceModel YAML (the same file `kubectl apply` takes).")]


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(2)


@app.command()
def validate(manifest: Manifest) -> None:
    """Check a manifest without running anything."""
    try:
        model = load_manifest(manifest)
    except RelmodelError as exc:
        _fail(exc)
    console.print(f"{manifest}: valid RelevanceModel {model.metadata.namespace}/{model.metadata.name}")


@app.command()
def plan(manifest: Manifest, root: Annotated[str, typer.Option(help="Storage root URI.")] = "runs") -> None:
    """Print the steps the planner derives from a manifest, with their keys and outputs."""
    from relmodel.planner import build_pipeline

    try:
        model = load_manifest(manifest)
    except RelmodelError as exc:
        _fail(exc)
    table = Table("step", "kind", "key", "output")
    for step in build_pipeline(model, _root_uri(root)):
        table.add_row(step.step.value, step.kind, step.key, step.output)
    console.print(table)


@app.command()
def run(
    manifest: Manifest,
    root: Annotated[str, typer.Option(help="Storage root (path or URI) for every step's output.")] = "runs",
) -> None:
    """Run the whole pipeline locally (the local executor); resumes from finished steps."""
    from relmodel.executors.local import LocalExecutor, StepEvent

    try:
        model = load_manifest(manifest)
    except RelmodelError as exc:
        _fail(exc)
    started = time.time()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} steps"), TimeElapsedColumn(), console=console) as progress:
        executor = LocalExecutor(model, _root_uri(root))
        task = progress.add_task("pipeline", total=len(executor.pipeline))

        def show(event: StepEvent) -> None:
            if event.status == "started":
                progress.update(task, description=f"{event.step.value} ({event.message})")
            elif event.status in ("succeeded", "skipped"):
                progress.advance(task)
                detail = f"{event.seconds:6.1f}s" if event.status == "succeeded" else "cached"
                progress.console.print(f"[green]✓[/green] {event.step.value:<10} {detail}  {_headline(event)}")
            else:
                progress.console.print(f"[red]✗[/red] {event.step.value:<10} {event.seconds:6.1f}s  {event.message}")

        executor.listener = show
        decision = executor.run()
    _print_outcome(executor, decision, time.time() - started)
    if decision.action.verb == "fail":
        raise typer.Exit(1)


@app.command()
def score(
    model: Annotated[str, typer.Option(help="Model directory or URI.")],
    input: Annotated[str, typer.Option("--input", help="Pairs JSONL (query, item_id, title[, attributes]).")],
    output: Annotated[str, typer.Option(help="Output JSONL; '-' for stdout.")] = "-",
    beta: Annotated[float, typer.Option(help="CumPT threshold β.")] = 0.5,
    chat_template: Annotated[bool, typer.Option(help="Wrap prompts in the chat template.")] = False,
) -> None:
    """Grade probabilities, CumPT grade and tier per pair: one batched prefill per query."""
    from relmodel.scoring import score_file

    try:
        with tempfile.TemporaryDirectory() as tmp:
            target = os.path.join(tmp, "scored.jsonl") if output == "-" else output
            summary = score_file(model, input, target, beta=beta, chat_template=chat_template)
            if output == "-":
                sys.stdout.write(Path(target).read_text(encoding="utf-8"))
    except (RelmodelError, ValueError) as exc:
        _fail(exc)
    print(f"scored {summary['pairs']} pairs at β={summary['beta']}: {summary['tiers']}", file=sys.stderr)



# --- the platform's processes (what the images run) -------------------------------------------


@app.command()
def operator(
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Watch one namespace.")] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Watch all (default).")] = False,
    resync_seconds: Annotated[float | None, typer.Option(help="Level-based resync period.")] = None,
    result_grace_seconds: Annotated[float | None, typer.Option(
        help="How long a succeeded Job may take to report its result.")] = None,
    liveness: Annotated[str | None, typer.Option(help="Liveness endpoint, e.g. http://0.0.0.0:8081/healthz")] = None,
    data_runs_url: Annotated[str | None, typer.Option(
        help="Run the data steps on this data-run service (default $RELMODEL_DATA_RUNS_URL; unset: Jobs).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the RelevanceModel operator (kopf)."""
    from relmodel.operator import run_operator

    run_operator(None if all_namespaces else namespace, resync_seconds=resync_seconds,
                 result_grace_seconds=result_grace_seconds, liveness_endpoint=liveness,
                 data_runs_url=data_runs_url, verbose=verbose)


@app.command()
def crd(check: Annotated[bool, typer.Option(help="Fail if the checked-in CRD differs.")] = False) -> None:
    """Print the RelevanceModel CRD generated from the spec models (or check the checked-in one)."""
    from relmodel.operator.crd import main as crd_main

    raise typer.Exit(crd_main(["--check"] if check else []))


@app.command("serve-engine")
def serve_engine(
    model: Annotated[str, typer.Option(help="Model directory.")],
    port: Annotated[int, typer.Option()] = 8000,
    host: Annotated[str, typer.Option()] = "0.0.0.0",
    served_model_name: Annotated[str | None, typer.Option(help="The OpenAI `model` name.")] = None,
    max_model_len: Annotated[int | None, typer.Option()] = None,
    torch_threads: Annotated[int | None, typer.Option()] = None,
) -> None:
    """The CPU engine: vLLM's OpenAI-compatible completions API served with transformers."""
    from relmodel.serving.engine import serve_engine as serve

    serve(model, host, port, served_model_name=served_model_name, max_model_len=max_model_len,
          torch_threads=torch_threads)


@app.command()
def gateway(
    engine_url: Annotated[str, typer.Option(help="Base URL of the engine (vLLM or the CPU engine).")],
    config: Annotated[str, typer.Option(help="CumPT config file (the operator's ConfigMap).")],
    port: Annotated[int, typer.Option()] = 8080,
    host: Annotated[str, typer.Option()] = "0.0.0.0",
) -> None:
    """The relevance gateway: score items of a query into grades and tiers."""
    from relmodel.serving.gateway import run_gateway

    run_gateway(config, engine_url, host, port)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """A Celery worker for the data steps (broker from RELMODEL_BROKER_URL)."""
    from relmodel.tasks.worker import run_worker

    run_worker(concurrency=concurrency, loglevel=loglevel)


@app.command("runs-service")
def runs_service(
    port: Annotated[int | None, typer.Option()] = None,
    host: Annotated[str | None, typer.Option()] = None,
) -> None:
    """The data-run service: submit and watch sharded data runs (POST /v1/runs)."""
    from relmodel.tasks.service.main import serve

    serve(host, port)


def _root_uri(root: str) -> str:
    return root if "://" in root else f"file://{os.path.abspath(root)}"


def _headline(event: object) -> str:
    metrics = getattr(event, "metrics", {}) or {}
    keys = ("macro_f1", "train_loss_last", "accepted", "pass@1", "pairs", "kept", "rows", "beta")
    parts = [f"{k}={metrics[k]:.3g}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}"
             for k in keys if k in metrics and not isinstance(metrics[k], dict | list)]
    return "  ".join(parts[:4])


def _print_outcome(executor: object, decision: object, seconds: float) -> None:
    from relmodel import storage
    from relmodel.evaluation import METRICS_FILE
    from relmodel.executors.local import LocalExecutor
    from relmodel.planner import Decision, Step
    from relmodel.report import REPORT_FILE, stage_table

    assert isinstance(executor, LocalExecutor) and isinstance(decision, Decision)
    eval_plan = next((p for p in executor.pipeline if p.step == Step.EVAL), None)
    if eval_plan is not None and storage.exists(storage.join(eval_plan.output, METRICS_FILE)):
        report = json.loads(storage.read_text(storage.join(eval_plan.output, METRICS_FILE)))
        table = Table("stage", "rule", "macro-F1", "acc", "F1 1", "F1 2", "F1 3", "F1 4",
                      title=f"Stage table ({report['eval_pairs']} eval pairs)")
        for row in stage_table(report):
            table.add_row(row["stage"], row["rule"], *(f"{100 * row[k]:.2f}" for k in
                          ("macro_f1", "accuracy", "f1_1", "f1_2", "f1_3", "f1_4")))
        console.print(table)
        console.print(f"report: {storage.join(eval_plan.output, REPORT_FILE)}")
    for condition in decision.conditions:
        colour = {"True": "green", "False": "red"}.get(condition.status, "yellow")
        console.print(f"  [{colour}]{condition.type}={condition.status}[/{colour}] {condition.reason} "
                      f"{condition.message}")
    console.print(f"phase {decision.phase} after {seconds:.0f}s")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
