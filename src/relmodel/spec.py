"""The RelevanceModel resource: pydantic models that are the single source of the CRD schema.

Field names are camelCase in YAML (as Kubernetes users write them) and snake_case in Python.
Defaults are CPU-sized so that the tiny example runs on a laptop; every GPU setting a real run
needs (bf16, gradient checkpointing, LoRA, vLLM generation, multi-GPU launch) is a field.
Rules the schema alone cannot say are written once here, as Python validators, and again as
CEL rules (`x-kubernetes-validations`) that the API server enforces; tests keep them in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from relmodel.errors import SpecError, validation_problems

API_GROUP = "relmodel.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "RelevanceModel"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(ge=1)]


def _cel(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


class SpecModel(BaseModel):
    """Base: camelCase aliases, unknown fields refused (a typo must not be silently ignored)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- base model -------------------------------------------------------------------------------


class TinyModelSpec(SpecModel):
    """A randomly initialised Llama-style model with a tokenizer trained on the run's own data."""

    vocab_size: int = Field(default=2000, ge=64, le=65536)
    hidden_size: int = Field(default=64, ge=8, le=4096)
    num_layers: int = Field(default=2, ge=1, le=48)
    num_heads: int = Field(default=4, ge=1, le=64)
    max_position_embeddings: int = Field(default=512, ge=64, le=32768)
    seed: int = 0


class GGUFModelSpec(SpecModel):
    """A GGUF file, dequantised by transformers (via the `gguf` package) into an HF directory."""

    path: str = Field(min_length=1, description="Directory or URI holding the GGUF file.")
    file: str = Field(min_length=1, description="GGUF file name inside `path`.")


class BaseModelSpec(SpecModel):
    """Exactly one source: a tiny model built on the spot, a local path, a hub id or a GGUF file."""

    model_config = ConfigDict(json_schema_extra=_cel(
        (
            "[has(self.tiny), has(self.path), has(self.hub), has(self.gguf)].filter(x, x).size() == 1",
            "baseModel needs exactly one of tiny, path, hub, gguf",
        ),
    ))

    tiny: TinyModelSpec | None = None
    path: str | None = Field(default=None, min_length=1, description="Local directory or fsspec URI.")
    hub: str | None = Field(default=None, min_length=1, description="Hub model id (real clusters only).")
    revision: str | None = None
    gguf: GGUFModelSpec | None = None
    chat_template: bool = Field(
        default=False, description="Wrap prompts in the tokenizer's chat template (instruct models)."
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> BaseModelSpec:
        given = [name for name in ("tiny", "path", "hub", "gguf") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"baseModel needs exactly one of tiny, path, hub, gguf (got {given or 'none'})")
        return self


# --- data -------------------------------------------------------------------------------------


class SyntheticDataSpec(SpecModel):
    """The seeded synthetic e-commerce set (head + negation, alternative, Q&A, knowledge queries)."""

    seed: int = 7
    train_size: int = Field(default=480, ge=8, le=1_000_000)
    eval_size: int = Field(default=240, ge=8, le=1_000_000)


class DatasetsSpec(SpecModel):
    """Either `synthetic`, or `train` + `eval` (+ `rules`) JSONL files given as fsspec URIs."""

    model_config = ConfigDict(json_schema_extra=_cel(
        (
            "has(self.synthetic) != (has(self.train) && has(self.eval))",
            "datasets needs either synthetic or both train and eval",
        ),
        ("!has(self.synthetic) || !has(self.train) && !has(self.eval)", "synthetic excludes train/eval"),
    ))

    synthetic: SyntheticDataSpec | None = None
    train: str | None = Field(default=None, min_length=1)
    eval: str | None = Field(default=None, min_length=1)
    rules: str | None = Field(default=None, min_length=1, description="Atomic rules JSONL for the RAG teacher.")
    max_train: int | None = Field(default=None, ge=1, description="Use at most this many training pairs.")
    max_eval: int | None = Field(default=None, ge=1, description="Use at most this many evaluation pairs.")

    @model_validator(mode="after")
    def _one_source(self) -> DatasetsSpec:
        files = self.train is not None or self.eval is not None
        if self.synthetic is not None and files:
            raise ValueError("datasets: synthetic excludes train/eval")
        if self.synthetic is None and not (self.train and self.eval):
            raise ValueError("datasets needs either synthetic or both train and eval")
        return self


class TeacherSpec(SpecModel):
    """Who writes the chain of thought: the offline rule composer, or any OpenAI-compatible endpoint."""

    model_config = ConfigDict(json_schema_extra=_cel(
        ("self.kind != 'openai' || has(self.endpoint) && has(self.model)",
         "an openai teacher needs endpoint and model"),
    ))

    kind: Literal["rules", "esci-rules", "openai"] = Field(default="rules", description=(
        "rules: offline composer for the synthetic set; esci-rules: offline composer that reads real "
        "product text (ESCI-style); openai: any OpenAI-compatible endpoint."))
    endpoint: str | None = Field(default=None, description="Base URL, e.g. http://teacher:8000/v1")
    model: str | None = None
    api_key_env: str | None = Field(default=None, description="Environment variable holding the API key.")
    max_concurrency: PositiveInt = 8
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)

    @model_validator(mode="after")
    def _openai_needs_endpoint(self) -> TeacherSpec:
        if self.kind == "openai" and not (self.endpoint and self.model):
            raise ValueError("an openai teacher needs endpoint and model")
        return self


class CoTSpec(SpecModel):
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)
    top_k: int = Field(default=3, ge=1, le=50, description="Atomic rules retrieved per pair.")
    retriever: Literal["auto", "embedding", "bm25"] = "auto"
    max_chars: int = Field(default=1200, ge=64, description="Length budget of one rationale.")


# --- training ---------------------------------------------------------------------------------


class LoRASpec(SpecModel):
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1)
    dropout: Fraction = 0.05
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainingSpec(SpecModel):
    """Optimiser and hardware settings shared by the three stages."""

    epochs: float = Field(default=1.0, gt=0, le=100)
    max_steps: int = Field(default=-1, ge=-1, description="Overrides epochs when positive.")
    learning_rate: float = Field(default=5e-4, gt=0, le=1)
    batch_size: PositiveInt = 8
    gradient_accumulation_steps: PositiveInt = 1
    warmup_ratio: Fraction = 0.05
    max_length: int = Field(default=512, ge=16, le=131072)
    seed: int = 0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_checkpointing: bool = False
    lora: LoRASpec | None = None
    num_processes: PositiveInt = Field(default=1, description="Processes per node (accelerate launch).")


class ResourcesSpec(SpecModel):
    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)


class RuntimeSpec(SpecModel):
    """Where a step runs on Kubernetes; unset fields fall back to `spec.runtime`."""

    image: str | None = None
    resources: ResourcesSpec | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str]] = Field(default_factory=list)
    service_account_name: str | None = None


class SFTSpec(SpecModel):
    enabled: bool = True
    training: TrainingSpec = Field(default_factory=lambda: TrainingSpec(epochs=3.0))
    runtime: RuntimeSpec | None = None


class DPOSpec(SpecModel):
    """pass@N sampling of the SFT model, the paper's pair rule, then DPO against the SFT model."""

    enabled: bool = True
    samples: int = Field(default=5, ge=2, le=64, description="N in pass@N.")
    temperature: float = Field(default=1.0, gt=0, le=5)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=160, ge=1, le=8192)
    max_prompts: int | None = Field(
        default=None, ge=1, description="Sample at most this many training prompts (a seeded subset)."
    )
    pairs_per_prompt: int = Field(default=1, ge=1, le=8)
    beta: float = Field(default=0.1, gt=0, le=10)
    use_vllm: bool = Field(default=False, description="Sample with vLLM (needs a GPU and vllm).")
    training: TrainingSpec = Field(default_factory=lambda: TrainingSpec(learning_rate=5e-5))
    runtime: RuntimeSpec | None = None


class DifficultyBand(SpecModel):
    """Keep a prompt when lower < group accuracy < upper (0 and 1 always excluded)."""

    model_config = ConfigDict(json_schema_extra=_cel(("self.lower < self.upper", "band needs lower < upper")))

    lower: float = Field(default=0.01, ge=0.0, lt=1.0)
    upper: float = Field(default=0.9, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> DifficultyBand:
        if not self.lower < self.upper:
            raise ValueError(f"difficulty band needs lower < upper, got [{self.lower}, {self.upper}]")
        return self


class GRPOSpec(SpecModel):
    """GRPO with difficulty-aware dynamic sampling and class-balanced prompt pools."""

    enabled: bool = True
    rounds: int = Field(default=2, ge=1, le=1000)
    group_size: int = Field(default=8, ge=2, le=256, description="G: rollouts per prompt.")
    prompts_per_round: int = Field(default=64, ge=1)
    band: DifficultyBand = Field(default_factory=DifficultyBand)
    class_balance: bool = True
    temperature: float = Field(default=1.0, gt=0, le=5)
    max_completion_length: int = Field(default=160, ge=1, le=8192)
    kl_beta: float = Field(default=0.02, ge=0)
    clip_epsilon: float = Field(default=0.2, gt=0, le=1)
    format_reward_weight: float = Field(default=0.1, ge=0, le=10)
    use_vllm: bool = False
    training: TrainingSpec = Field(default_factory=lambda: TrainingSpec(learning_rate=2e-5))
    runtime: RuntimeSpec | None = None


class StagesSpec(SpecModel):
    sft: SFTSpec = Field(default_factory=SFTSpec)
    dpo: DPOSpec = Field(default_factory=DPOSpec)
    grpo: GRPOSpec = Field(default_factory=GRPOSpec)


# --- evaluation, gates, serving ------------------------------------------------------------------


class BetaGrid(SpecModel):
    model_config = ConfigDict(json_schema_extra=_cel(("self.start <= self.stop", "betaGrid needs start <= stop")))

    start: Fraction = 0.3
    stop: Fraction = 0.8
    step: float = Field(default=0.05, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> BetaGrid:
        if self.start > self.stop:
            raise ValueError(f"betaGrid needs start <= stop, got {self.start} > {self.stop}")
        return self

    def values(self) -> list[float]:
        count = round((self.stop - self.start) / self.step) + 1
        grid = (round(self.start + i * self.step, 6) for i in range(count))
        return [beta for beta in grid if beta <= self.stop + 1e-9]


class EvaluationSpec(SpecModel):
    baseline: bool = Field(default=True, description="Also train the label-only SFT baseline row.")
    beta_grid: BetaGrid = Field(default_factory=BetaGrid)


class GatesSpec(SpecModel):
    """Quality gate before rollout."""

    min_macro_f1: Fraction | None = None
    no_regression: bool = Field(default=False, description="Refuse to replace a better model now serving.")
    tolerance: Fraction = 0.0


class ServingSpec(SpecModel):
    enabled: bool = True
    engine: Literal["vllm", "cpu"] = "vllm"
    image: str | None = None
    vllm_version: str = "0.33.0"
    replicas: int = Field(default=1, ge=0, le=100)
    beta: Fraction | None = Field(default=None, description="CumPT beta; default: calibrated on eval.")
    max_items_per_request: int = Field(default=200, ge=1, le=10000)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    quantization: Literal["fp8"] | None = None
    max_model_len: int = Field(default=2048, ge=64)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    resources: ResourcesSpec | None = None
    gateway_replicas: int = Field(default=1, ge=0, le=100)
    gateway_image: str | None = None


class RetrySpec(SpecModel):
    limit: int = Field(default=3, ge=0, le=100, description="Retries of a failed step before Failed.")
    backoff_seconds: float = Field(default=10.0, ge=0, le=86400)


class StorageSpec(SpecModel):
    uri: str = Field(default="file:///var/lib/relmodel", min_length=1, description="Root for all step outputs.")
    pvc: str | None = Field(default=None, description="PersistentVolumeClaim mounted at the file:// root.")
    secret_name: str | None = Field(default=None, description="Secret with object-store credentials (env).")


class RelevanceModelSpec(SpecModel):
    base_model: BaseModelSpec
    datasets: DatasetsSpec
    cot: CoTSpec = Field(default_factory=CoTSpec)
    stages: StagesSpec = Field(default_factory=StagesSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    retries: RetrySpec = Field(default_factory=RetrySpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata relmodel reads; the rest is kept but not interpreted."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    namespace: str = Field(default="default", pattern=DNS_LABEL, max_length=63)
    generation: int | None = None
    uid: str | None = None


class RelevanceModel(BaseModel):
    """A manifest as `kubectl apply` takes it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["relmodel.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["RelevanceModel"]
    metadata: ObjectMeta
    spec: RelevanceModelSpec
    status: dict[str, Any] | None = None


def load_manifest(path: str | Path) -> RelevanceModel:
    """Read and validate a RelevanceModel YAML file; any problem is a SpecError naming the field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read manifest: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    return parse_manifest(raw, source=str(path))


def parse_manifest(raw: object, source: str = "manifest") -> RelevanceModel:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a RelevanceModel object, got {type(raw).__name__}")
    try:
        return RelevanceModel.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  {problem}" for problem in validation_problems(exc))
        raise SpecError(f"{source}: invalid RelevanceModel:\n{problems}") from exc
