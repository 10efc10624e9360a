"""The RelevanceModel status: pydantic models that are the source of the CRD's status schema.

The operator writes exactly these fields (camelCase, as `kubectl get -o yaml` shows them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ConditionStatus(StatusModel):
    """A Kubernetes condition; lastTransitionTime changes only when `status` changes."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int | None = None


class StageStatus(StatusModel):
    """One pipeline step, for the key the current spec gives it."""

    key: str
    phase: str = Field(description="Pending, Running, Succeeded or Failed.")
    attempts: int = Field(default=0, description="Failed attempts so far.")
    job: str | None = Field(default=None, description="The Job of the latest attempt.")
    run: str | None = Field(default=None, description="The data run of a data step (data-run service).")
    start_time: str | None = None
    completion_time: str | None = None
    message: str | None = None
    output: str = Field(description="The step's output URI.")
    metrics: dict[str, Any] = Field(default_factory=dict)


class ServingStatus(StatusModel):
    endpoint: str | None = Field(default=None, description="The gateway's in-cluster URL.")
    engine_endpoint: str | None = None
    model: str | None = Field(default=None, description="The model URI now served.")
    key: str | None = None
    beta: float | None = Field(default=None, description="The CumPT beta in force.")
    macro_f1: float | None = None


class RelevanceModelStatus(StatusModel):
    observed_generation: int | None = None
    phase: str | None = None
    current_step: str | None = None
    message: str | None = None
    macro_f1: float | None = Field(default=None, description="Eval macro-F1 of the model to serve.")
    conditions: list[ConditionStatus] = Field(default_factory=list)
    stages: dict[str, StageStatus] = Field(default_factory=dict)
    serving: ServingStatus | None = None


# --- building status (pure) --------------------------------------------------------------------


def merge_conditions(previous: list[dict[str, Any]], current: list[ConditionStatus], now: str
                     ) -> list[ConditionStatus]:
    """Carry lastTransitionTime over from `previous` for every condition whose status did not change."""
    before = {c.get("type"): c for c in previous if isinstance(c, dict)}
    merged = []
    for cond in current:
        old = before.get(cond.type)
        same = old is not None and old.get("status") == cond.status and old.get("lastTransitionTime")
        merged.append(cond.model_copy(update={"last_transition_time": old["lastTransitionTime"] if same and old
                                              else now}))
    return merged


def dump_status(status: RelevanceModelStatus) -> dict[str, Any]:
    """The status as the API object holds it (camelCase, unset optional fields left out)."""
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")
