"""The four relevance grades and the three serving tiers (TaoSR1 label scheme)."""

from __future__ import annotations

from enum import IntEnum, StrEnum

from relmodel.errors import DataError


class Grade(IntEnum):
    """Relevance grade of an item for a query; higher is more relevant."""

    IRRELEVANT = 1
    MISMATCH = 2
    RELATED = 3
    EXCELLENT = 4

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def token(self) -> str:
        """The text the model writes first for this grade (a single token, checked at start)."""
        return str(int(self))

    @property
    def tier(self) -> Tier:
        return TIER_OF_GRADE[self]


class Tier(StrEnum):
    """Serving tiers used for tiered sorting: Good before Mid before Bad."""

    GOOD = "Good"
    MID = "Mid"
    BAD = "Bad"


TIER_OF_GRADE: dict[Grade, Tier] = {
    Grade.EXCELLENT: Tier.GOOD,
    Grade.RELATED: Tier.GOOD,
    Grade.MISMATCH: Tier.MID,
    Grade.IRRELEVANT: Tier.BAD,
}
TIER_ORDER: dict[Tier, int] = {Tier.GOOD: 0, Tier.MID: 1, Tier.BAD: 2}

GRADES: tuple[Grade, ...] = (Grade.IRRELEVANT, Grade.MISMATCH, Grade.RELATED, Grade.EXCELLENT)
GRADE_TOKENS: tuple[str, ...] = tuple(g.token for g in GRADES)


def parse_grade(value: object) -> Grade:
    """Turn 1-4 (int or digit string) into a Grade; anything else is a clear DataError."""
    if isinstance(value, Grade):
        return value
    if isinstance(value, bool):
        raise DataError(f"unknown grade {value!r}: expected one of 1, 2, 3, 4")
    if isinstance(value, int | str):
        text = str(value).strip()
        if text in GRADE_TOKENS:
            return Grade(int(text))
    raise DataError(f"unknown grade {value!r}: expected one of 1, 2, 3, 4")
