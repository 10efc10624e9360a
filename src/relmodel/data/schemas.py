"""JSONL row schemas: one pydantic model per kind of file a step reads or writes.

Pairs accept extra fields (real user data carries its own columns) but must have every field
listed here; every other kind is written by relmodel and is read back strictly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from relmodel.errors import DataError
from relmodel.labels import Grade, parse_grade


def _grade(value: object) -> Grade:
    # pydantic reports ValueErrors with the field's location; read_jsonl adds the file and line.
    try:
        return parse_grade(value)
    except DataError as exc:
        raise ValueError(str(exc)) from exc


GradeField = Annotated[Grade, BeforeValidator(_grade), PlainSerializer(int, return_type=int)]
QueryType = Literal["head", "negation", "alternative", "qa", "knowledge", "other"]


class Pair(BaseModel):
    """A (query, item) pair, graded when it is training or evaluation data."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    query: str = Field(min_length=1)
    item_id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    query_id: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    grade: GradeField | None = None
    query_type: QueryType = "other"

    @property
    def pair_id(self) -> str:
        return f"{self.query_id or self.query}::{self.item_id}"


class GradedPair(Pair):
    """A pair whose grade is required (train and eval splits)."""

    grade: GradeField


class Rule(BaseModel):
    """An atomic relevance rule: one self-contained statement the teacher can cite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    grade_hint: GradeField | None = None
    tags: list[str] = Field(default_factory=list)


class CoTRecord(BaseModel):
    """A pair with an accepted post-CoT completion written by a teacher."""

    model_config = ConfigDict(extra="forbid")

    pair: GradedPair
    completion: str
    rule_ids: list[str]
    teacher: str


class RejectedCoT(BaseModel):
    """A teacher output that failed the filter, kept with the reason for inspection."""

    model_config = ConfigDict(extra="forbid")

    pair: GradedPair
    completion: str
    reason: str
    teacher: str


class SampleGroup(BaseModel):
    """N sampled completions of one prompt and the grade each one starts with (None: unparsable)."""

    model_config = ConfigDict(extra="forbid")

    pair: GradedPair
    completions: list[str]
    grades: list[GradeField | None]

    @property
    def correct(self) -> list[bool]:
        return [g == self.pair.grade for g in self.grades]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.grades) if self.grades else 0.0


class PreferencePair(BaseModel):
    """A DPO pair (TRL's prompt/chosen/rejected columns) with the case of the paper's rule."""

    model_config = ConfigDict(extra="forbid")

    pair_id: str
    prompt: str
    chosen: str
    rejected: str
    case: Literal["self_correction", "oracle"]
