"""The data-run API's request and response bodies (shared by the service and `DataRunClient`)."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RunKind = Literal["data", "cot", "samples", "difficulty"]
# The step param that names each kind's input file (the planner's names); `data` reads its datasets spec.
INPUT_PARAM: dict[str, str | None] = {"data": None, "cot": "train", "samples": "cot", "difficulty": "train"}


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED)


class RunCreate(BaseModel):
    """A data step to run: its kind and exactly the params the planner built (`StepPlan.params`).

    `input`/`output` may be given on their own; they must agree with the params when both are set.
    """

    model_config = ConfigDict(extra="forbid")

    kind: RunKind
    params: dict[str, Any] = Field(default_factory=dict)
    input: str | None = Field(default=None, min_length=1)
    output: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _uris(self) -> RunCreate:
        params = dict(self.params)
        for field_name, key in (("output", "output"), ("input", INPUT_PARAM[self.kind])):
            given = getattr(self, field_name)
            if given is None:
                continue
            if key is None:
                raise ValueError(f"a {self.kind} run takes no separate input URI (it reads params.datasets)")
            if key in params and params[key] != given:
                raise ValueError(f"{field_name} {given!r} disagrees with params.{key} {params[key]!r}")
            params[key] = given
        if not isinstance(params.get("output"), str) or not params["output"]:
            raise ValueError("the run needs an output URI (output, or params.output)")
        key = INPUT_PARAM[self.kind]
        if key is not None and not isinstance(params.get(key), str):
            raise ValueError(f"a {self.kind} run needs its input URI (input, or params.{key})")
        self.params = params
        return self

    def run_id(self) -> str:
        """Same kind and params, same run: posting a run twice never starts it twice."""
        payload = json.dumps({"kind": self.kind, "params": self.params}, sort_keys=True, default=str)
        return f"{self.kind}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


class Progress(BaseModel):
    shards_done: int = 0
    shards_total: int = 0


class Counts(BaseModel):
    """Rows written, rows rejected, and rejected rows by reason (summed over the committed shards)."""

    rows: int = 0
    rejected: int = 0
    errors_by_reason: dict[str, int] = Field(default_factory=dict)


class RunStatus(BaseModel):
    """A run as the operator reads it; `result` is the step's result.json once it succeeded."""

    id: str
    kind: RunKind
    state: RunState
    input: str | None
    output: str
    params: dict[str, Any]
    progress: Progress = Field(default_factory=Progress)
    counts: Counts = Field(default_factory=Counts)
    error: str | None = None
    permanent: bool = Field(default=False, description="The failure is the input's fault (a RelmodelError, a "
                            "step's exit code 2): running it again cannot succeed.")
    result: dict[str, Any] | None = None
    attempts: int = 0
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float
