"""The CumPT tier config: what the gateway needs to turn first-token logprobs into grades and tiers.

The operator writes it into a ConfigMap (key `cumpt.json`) next to the engine Deployment; the
local executor writes it into the serve step's output. The gateway re-reads it when it changes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from relmodel import storage
from relmodel.cumpt import DEFAULT_BETA

CONFIG_FILE = "cumpt.json"


class CumPTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="Model name the engine serves (OpenAI `model` field).")
    beta: float = Field(default=DEFAULT_BETA, ge=0.0, le=1.0)
    grade_tokens: tuple[str, str, str, str] = ("1", "2", "3", "4")
    grade_token_ids: tuple[int, int, int, int]
    chat_template: bool = False
    max_items_per_request: int = Field(default=200, ge=1)
    macro_f1: float | None = Field(default=None, description="Eval macro-F1 of the served model (lineage).")
    source: str | None = Field(default=None, description="The eval output this config was calibrated on.")


def load_config(uri: str) -> CumPTConfig:
    return CumPTConfig.model_validate_json(storage.read_text(uri))
