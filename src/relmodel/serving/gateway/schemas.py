"""Request and response bodies of the relevance API (the OpenAPI schema comes from these)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from relmodel.labels import Tier

MAX_QUERY_CHARS = 512
MAX_TITLE_CHARS = 1024
MAX_ATTRIBUTES = 32
MAX_ATTR_KEY_CHARS = 64
MAX_ATTR_VALUE_CHARS = 256
HARD_MAX_ITEMS = 10000  # the spec's ceiling; the config's max_items_per_request is checked per request

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)]
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
AttrKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ATTR_KEY_CHARS)]
AttrValue = Annotated[str, StringConstraints(max_length=MAX_ATTR_VALUE_CHARS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Item(Strict):
    id: ItemId
    title: Title
    attributes: dict[AttrKey, AttrValue] | None = Field(default=None, max_length=MAX_ATTRIBUTES)


class ScoreRequest(Strict):
    query: Query
    items: list[Item] = Field(min_length=1, max_length=HARD_MAX_ITEMS)
    beta: float | None = Field(default=None, ge=0.0, le=1.0, description="Override the configured CumPT beta.")

    @field_validator("items")
    @classmethod
    def _unique_ids(cls, items: list[Item]) -> list[Item]:
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"item ids must be unique; {item.id!r} repeats")
            seen.add(item.id)
        return items


class GradeProbs(BaseModel):
    """Renormalised first-token probabilities of the four grade tokens."""

    model_config = ConfigDict(populate_by_name=True)

    p1: float = Field(alias="1", ge=0, le=1)
    p2: float = Field(alias="2", ge=0, le=1)
    p3: float = Field(alias="3", ge=0, le=1)
    p4: float = Field(alias="4", ge=0, le=1)


class ScoredItem(BaseModel):
    id: str
    probs: GradeProbs
    grade: int = Field(ge=1, le=4)
    tier: Tier
    expected_grade: float = Field(ge=1, le=4)


class ScoreResponse(BaseModel):
    model: str
    beta: float
    items: list[ScoredItem] = Field(description="In request order.")
    ranking: list[str] = Field(
        description="Item ids: Good, then Mid, then Bad; within a tier by expected grade, then p4, descending."
    )


class ExplainRequest(Strict):
    query: Query
    item: Item


class Rationale(BaseModel):
    grade: int
    steps: list[str]
    verdict_grade: int | None
    consistent: bool


class ExplainResponse(BaseModel):
    model: str
    id: str
    text: str = Field(description="The decoded post-CoT completion, raw.")
    leading_grade: int | None = Field(description="The grade the completion starts with, if any.")
    rationale: Rationale | None = Field(description="Parsed completion; null when it does not follow the format.")
    parse_error: str | None = None
    finish_reason: str | None = None
