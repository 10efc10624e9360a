"""The Dockerfiles agree with the code, pyproject.toml and the chart (no Docker needed: they are parsed).

For every image: pinned bases, a numeric non-root USER (the chart's runAsUser), extras that exist in
pyproject.toml, a build context that holds what COPY needs, ENTRYPOINT/CMD that exist (the `relmodel`
console script and its subcommand, or an importable `python -m` module), EXPOSEd ports equal to the
ports the chart and the operator give the containers, and every module the image's commands import
provided by the image's extras (the check that catches a dependency missing from an extra).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from relmodel.operator import children as ch
from relmodel.planner import STEP_ENTRY, STEP_KIND, Step

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VALUES = yaml.safe_load((ROOT / "helm" / "relmodel" / "values.yaml").read_text())
CHART_UID = VALUES["podSecurityContext"]["runAsUser"]
STEP_MODULES = sorted({STEP_ENTRY[s] for s in Step if STEP_KIND[s] != "serve"} | {ch.STEP_WRAPPER})

# The `relmodel` subcommands and the modules that implement them (what the CLI calls).
SUBCOMMANDS = {
    "operator": "relmodel.operator.main",
    "worker": "relmodel.tasks.worker",
    "runs-service": "relmodel.tasks.service.main",
    "gateway": "relmodel.serving.gateway.app",
    "serve-engine": "relmodel.serving.engine.server",
}


@dataclass(frozen=True)
class Image:
    """What an image is for: its extras, the commands run in it (by the chart or the operator), its port."""

    dockerfile: str
    name: str  # the image name in helm/relmodel (images.names / values-kind.yaml)
    extras: frozenset[str]
    commands: tuple[tuple[str, ...], ...]
    port: int | None
    modules: tuple[str, ...] = field(default=())


IMAGES = [
    Image("operator/Dockerfile", "operator", frozenset({"operator"}),
          (("relmodel", "operator", "--namespace=ns", "--liveness=http://0.0.0.0:8080/healthz"),
           ("relmodel", "operator", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "--verbose")),
          VALUES["operator"]["livenessPort"], ("relmodel.cli", "relmodel.operator.main", "relmodel.operator.handlers")),
    Image("services/gateway.Dockerfile", "gateway", frozenset({"serve"}),
          (("relmodel", "gateway", "--engine-url", "http://tiny-engine:8000/v1", "--config",
            "/etc/relmodel/cumpt.json", "--port", str(ch.GATEWAY_PORT)),),
          ch.GATEWAY_PORT, ("relmodel.cli", "relmodel.serving.gateway.app")),
    Image("services/worker.Dockerfile", "worker", frozenset({"worker", "rag", "train", "serve"}),
          (("relmodel", "worker", "--concurrency", "1"),
           ("relmodel", "runs-service", "--port", str(VALUES["runsService"]["port"]))),
          VALUES["runsService"]["port"],
          ("relmodel.cli", "relmodel.tasks.worker", "relmodel.tasks.service.main", "relmodel.tasks.shards",
           "relmodel.tasks.cot", "relmodel.tasks.sampling", "relmodel.tasks.difficulty")),
    Image("services/engine-cpu.Dockerfile", "engine-cpu", frozenset({"serve", "train"}),
          (("relmodel", "serve-engine", "--model", "/m", "--served-model-name", "tiny",
            "--port", str(ch.ENGINE_PORT)),),
          ch.ENGINE_PORT, ("relmodel.cli", "relmodel.serving.engine.server")),
    Image("trainer_images/cpu.Dockerfile", "trainer-cpu", frozenset({"train", "rag", "worker"}),
          tuple(("python", "-m", m) for m in STEP_MODULES), None, ("relmodel.cli", *STEP_MODULES)),
    Image("trainer_images/cuda.Dockerfile", "trainer-cuda", frozenset({"train", "rag", "worker"}),
          tuple(("python", "-m", m) for m in STEP_MODULES), None, ("relmodel.cli", *STEP_MODULES)),
]
IDS = [i.dockerfile for i in IMAGES]


# --- a small Dockerfile parser ------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for name, arg in self.instructions if name == op]

    def last(self, op: str) -> str | None:
        found = self.all(op)
        return found[-1] if found else None


@functools.cache
def parse(dockerfile: str) -> list[Stage]:
    """Stages with their (INSTRUCTION, argument) pairs; continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / dockerfile).read_text().splitlines():
        stripped = raw.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, f"{dockerfile}: dangling line continuation"
    stages: list[Stage] = []
    for line in lines:
        op, _, arg = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            words = arg.split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias))
            continue
        assert stages, f"{dockerfile}: {op} before FROM"
        stages[-1].instructions.append((op, arg.strip()))
    return stages


def exec_form(dockerfile: str, arg: str | None) -> list[str]:
    if arg is None:
        return []
    value = json.loads(arg)  # shell form would run under /bin/sh -c and swallow SIGTERM
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{dockerfile}: {arg}"
    return value


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arg in stage.all("ENV"):
        for item in shlex.split(arg):
            key, _, value = item.partition("=")
            env[key] = value
    return env


# --- the checks -----------------------------------------------------------------------------------------


def test_every_dockerfile_is_covered() -> None:
    found = {str(p.relative_to(ROOT)) for d in ("operator", "services", "trainer_images")
             for p in (ROOT / d).iterdir() if p.name == "Dockerfile" or p.name.endswith(".Dockerfile")}
    assert found == set(IDS)


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_bases_are_pinned(image: Image) -> None:
    stages = parse(image.dockerfile)
    aliases = {s.alias for s in stages if s.alias}
    for stage in stages:
        if stage.base in aliases:
            continue
        assert "$" not in stage.base, f"{image.dockerfile}: FROM {stage.base} (pin it literally)"
        name, _, tag = stage.base.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest", f"{image.dockerfile}: FROM {stage.base} is not pinned"
        assert re.match(r"^v?\d+\.\d+\.\d+", tag) or "@sha256:" in stage.base, \
            f"{image.dockerfile}: FROM {stage.base}: pin an exact version (x.y.z) or a digest"
        if name == "python":
            assert tag.startswith("3.11."), f"{image.dockerfile}: Python must be 3.11 (pyproject requires-python)"
        elif name == "nvidia/cuda":
            assert "-runtime-ubuntu22.04" in tag
        else:
            pytest.fail(f"{image.dockerfile}: unexpected base image {stage.base}")


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_runs_as_the_charts_non_root_user(image: Image) -> None:
    final = parse(image.dockerfile)[-1]
    user = final.last("USER")
    assert user is not None, f"{image.dockerfile}: no USER in the final stage (it would run as root)"
    uid, _, gid = user.partition(":")
    # Numeric, so that the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0)), user
    assert int(uid) == CHART_UID, f"{image.dockerfile}: USER {uid} but the chart runs pods as {CHART_UID}"
    created = " ".join(final.all("RUN"))
    assert f"--uid {uid}" in created, f"{image.dockerfile}: user {uid} is never created"
    index = final.instructions.index(("USER", user))
    assert not [op for op, _ in final.instructions[index:] if op == "RUN"], "RUN after USER: build steps as non-root"


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_extras_exist_and_match_the_images_purpose(image: Image) -> None:
    build = parse(image.dockerfile)
    installs = [m for s in build for arg in s.all("RUN") for m in re.findall(r'"\.\[([a-z,]+)\]"', arg)]
    assert len(installs) == 1, f"{image.dockerfile}: expected one pip install \".[extras]\", got {installs}"
    extras = frozenset(installs[0].split(","))
    declared = set(PYPROJECT["project"]["optional-dependencies"])
    assert extras <= declared, f"{image.dockerfile}: unknown extras {sorted(extras - declared)}"
    assert extras == image.extras


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_cpu_torch_matches_the_pin(image: Image) -> None:
    runs = " ".join(a for s in parse(image.dockerfile) for a in s.all("RUN"))
    pinned = next(r for r in PYPROJECT["project"]["optional-dependencies"]["train"] if r.startswith("torch"))
    if "download.pytorch.org/whl/cpu" in runs:
        assert f'"{pinned}"' in runs, f"{image.dockerfile}: the CPU torch must be pyproject's {pinned}"
    if image.name == "trainer-cuda":
        assert "whl/cpu" not in runs


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_build_context_holds_what_copy_needs(image: Image) -> None:
    ignore = (ROOT / f"{image.dockerfile}.dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", "ignore everything, then re-include (small, cache-friendly contexts)"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for stage in parse(image.dockerfile):
        for arg in stage.all("COPY"):
            words = arg.split()
            if any(w.startswith("--from=") for w in words):
                source = next(w for w in words if w.startswith("--from=")).removeprefix("--from=")
                assert source in {s.alias for s in parse(image.dockerfile)}, arg
                continue
            for src in words[:-1]:
                assert (ROOT / src).exists(), f"{image.dockerfile}: COPY {src}: not in the repository"
                assert src.rstrip("/") in included, f"{image.dockerfile}: COPY {src} is excluded by the .dockerignore"
    readme = PYPROJECT["project"]["readme"]
    assert readme in included, "hatchling reads the readme while building the wheel"


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_venv_is_on_path(image: Image) -> None:
    final = parse(image.dockerfile)[-1]
    assert "--from=build /opt/venv /opt/venv" in final.all("COPY")
    env = env_of(final)
    assert env["PATH"].startswith("/opt/venv/bin:"), "python / relmodel must resolve to the venv's"
    assert env.get("PYTHONUNBUFFERED") == "1"


@functools.cache
def cli_commands() -> set[str]:
    import typer.main

    from relmodel.cli import app

    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def check_command(image: Image, argv: list[str]) -> None:
    if argv[0] == "relmodel":
        assert PYPROJECT["project"]["scripts"]["relmodel"] == "relmodel.cli:app"
        if len(argv) > 1 and not argv[1].startswith("-"):
            module = SUBCOMMANDS.get(argv[1])
            assert module is not None, f"{image.dockerfile}: unknown relmodel subcommand {argv[1]!r}"
            assert importlib.util.find_spec(module) is not None, module
            if argv[1] not in cli_commands():
                pytest.xfail(f"`relmodel {argv[1]}` is not wired into the CLI yet ({module} implements it); "
                             f"{image.dockerfile} runs it")
    elif argv[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(argv[2]) is not None, f"{image.dockerfile}: python -m {argv[2]}: no module"
    else:
        pytest.fail(f"{image.dockerfile}: runs {argv[0]!r}, neither the relmodel console script nor python -m")


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_default_command_exists(image: Image) -> None:
    final = parse(image.dockerfile)[-1]
    argv = exec_form(image.dockerfile, final.last("ENTRYPOINT")) + exec_form(image.dockerfile, final.last("CMD"))
    assert argv, f"{image.dockerfile}: no ENTRYPOINT/CMD"
    check_command(image, argv)


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_commands_run_in_it_exist(image: Image) -> None:
    """What the chart and the operator run in this image (args appended to its ENTRYPOINT, or a command)."""
    entry = exec_form(image.dockerfile, parse(image.dockerfile)[-1].last("ENTRYPOINT"))
    for command in image.commands:
        if entry:
            assert entry == [command[0]], f"{image.dockerfile}: the chart passes args to ENTRYPOINT {entry}"
        check_command(image, list(command))


def test_operator_children_run_what_the_images_hold() -> None:
    """children.py's commands for the gateway, the CPU engine and the step Jobs are those of IMAGES."""
    from relmodel.planner import build_pipeline
    from relmodel.spec import parse_manifest

    model = parse_manifest(yaml.safe_load((ROOT / "examples" / "relevancemodel-kind.yaml").read_text()))
    plans = {p.step: p for p in build_pipeline(model)}
    by_name = {i.name: i for i in IMAGES}
    command, args = ch.engine_args(model, plans[Step.SERVE])
    assert [*command, args[0]] == list(by_name["engine-cpu"].commands[0][:2])
    assert args[args.index("--port") + 1] == str(ch.ENGINE_PORT)
    for plan in plans.values():
        if plan.kind != "serve":
            argv = ch.step_command(plan)
            assert argv[:3] == ["python", "-m", ch.STEP_WRAPPER] and argv[3] in STEP_MODULES


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_exposed_ports_match_the_chart_and_operator(image: Image) -> None:
    final = parse(image.dockerfile)[-1]
    exposed = [int(p.split("/")[0]) for arg in final.all("EXPOSE") for p in arg.split()]
    assert exposed == ([image.port] if image.port else []), f"{image.dockerfile}: EXPOSE {exposed}"
    argv = exec_form(image.dockerfile, final.last("CMD"))
    # What the default command listens on: --port N, and the 0.0.0.0 URLs it serves (the liveness endpoint).
    ports = [int(m) for a in argv for m in re.findall(r"//0\.0\.0\.0:(\d+)", a)]
    ports += [int(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a == "--port"]
    assert set(ports) <= set(exposed), f"{image.dockerfile}: CMD listens on {ports}, EXPOSE {exposed}"


def test_chart_image_names_have_dockerfiles() -> None:
    names = {i.name for i in IMAGES}
    assert set(VALUES["images"]["names"].values()) <= names
    kind = yaml.safe_load((ROOT / "helm" / "relmodel" / "values-kind.yaml").read_text())["images"]
    doc = (ROOT / "docs" / "kind.md").read_text()
    by_name = {i.name: i for i in IMAGES}
    for name in kind["names"].values():
        image = by_name[name]
        assert by_name[name].name != "trainer-cuda", "kind has no GPUs"
        assert f"docker build -f {image.dockerfile} -t {kind['registry']}/{name}:{kind['tag']} ." in doc


# --- every import of the image's commands is provided by its extras ------------------------------------


def _distributions_for(extras: frozenset[str]) -> set[str]:
    """relmodel's core dependencies plus `extras`, closed over their own requirements (installed metadata)."""
    wanted: set[str] = {canonicalize_name("relmodel")}
    todo: list[tuple[str, frozenset[str]]] = [("relmodel", extras)]
    while todo:
        name, with_extras = todo.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for raw in requires:
            req = Requirement(raw)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (*with_extras, "")):
                continue
            key = canonicalize_name(req.name)
            if key not in wanted:
                wanted.add(key)
                todo.append((req.name, frozenset(req.extras)))
    return wanted


def _module_level_imports(path: Path) -> set[str]:
    """Modules imported when the file is imported (not inside functions: those are lazy), fully qualified."""
    names: set[str] = set()
    todo: list[ast.stmt] = list(ast.parse(path.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # submodules imported by name
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    todo.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return names


def _source(module: str) -> Path | None:
    base = ROOT / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_distributions(modules: tuple[str, ...]) -> dict[str, set[str]]:
    """Distributions that importing `modules` needs: module-level imports of every relmodel module reached,
    followed statically through relmodel (third-party packages' own optional imports are their business)."""
    seen: set[str] = set()
    todo = list(modules)
    third_party: dict[str, set[str]] = {}
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, then a/b/c
            name = ".".join(parts[:i])
            path = _source(name)
            if name in seen or path is None:
                continue
            seen.add(name)
            for imported in _module_level_imports(path):
                top = imported.split(".")[0]
                if top == "relmodel":
                    todo.append(imported)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    third_party.setdefault(top, set()).add(name)
    owners = metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for top, importers in third_party.items():
        for dist in owners.get(top, [f"<not installed: {top}>"]):
            found.setdefault(canonicalize_name(dist), set()).update(f"{top} (in {m})" for m in importers)
    return found


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_imports_are_provided_by_the_extras(image: Image) -> None:
    allowed = _distributions_for(image.extras)
    imported = _imported_distributions(image.modules)
    missing = {dist: sorted(mods) for dist, mods in imported.items() if dist not in allowed}
    assert not missing, (f"{image.dockerfile} installs .[{','.join(sorted(image.extras))}] but its commands import "
                         f"{missing}: add them to an extra in pyproject.toml")


def operator_argvs() -> list[list[str]]:
    """The command lines the operator gives the gateway and the CPU engine for the kind example."""
    from relmodel.planner import build_pipeline
    from relmodel.serving.config import CumPTConfig
    from relmodel.spec import parse_manifest

    model = parse_manifest(yaml.safe_load((ROOT / "examples" / "relevancemodel-kind.yaml").read_text()))
    serve = next(p for p in build_pipeline(model) if p.step == Step.SERVE)
    config = CumPTConfig(model="tiny", beta=0.5, grade_token_ids=(1, 2, 3, 4))
    out = []
    for obj in ch.render_serving(model, serve, config):
        if obj["kind"] == "Deployment":
            container = obj["spec"]["template"]["spec"]["containers"][0]
            out.append([*container["command"], *container["args"]])
    return out


def test_command_lines_parse_in_the_cli() -> None:
    """Every `relmodel ...` command line that an image, the chart or the operator uses is accepted by the CLI
    (click parses it; nothing runs)."""
    import typer.main

    from relmodel.cli import app

    group = typer.main.get_command(app)
    argvs = [list(c) for i in IMAGES for c in i.commands]
    for image in IMAGES:
        final = parse(image.dockerfile)[-1]
        entry, cmd = final.last("ENTRYPOINT"), final.last("CMD")
        argvs.append(exec_form(image.dockerfile, entry) + exec_form(image.dockerfile, cmd))
    argvs += operator_argvs()
    checked = 0
    for argv in argvs:
        if argv[0] != "relmodel" or len(argv) < 2 or argv[1].startswith("-"):
            continue
        commands = getattr(group, "commands", {})
        if argv[1] not in commands:
            pytest.xfail(f"`relmodel {argv[1]}` is not wired into the CLI yet")
        commands[argv[1]].make_context(argv[1], list(argv[2:]))  # raises click.UsageError on a bad option
        checked += 1
    assert checked >= 8
