"""Errors a user can act on: each carries a message that says what was wrong and where."""

from __future__ import annotations

from pydantic import ValidationError


class RelmodelError(Exception):
    """Base class for errors caused by user input (manifests, data, models), not by bugs."""


class SpecError(RelmodelError):
    """A RelevanceModel manifest is invalid."""


class DataError(RelmodelError):
    """A data file (JSONL) is unreadable or a row does not match its schema."""


class FormatError(RelmodelError):
    """A model output does not follow the post-CoT format."""


class TokenizerError(RelmodelError):
    """The tokenizer cannot represent the grade tokens the way scoring needs."""


def validation_problems(exc: ValidationError) -> list[str]:
    """One line per problem, naming the field: 'spec.stages.ppo: unknown field'."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown field")
        elif error["type"] == "missing":
            problems.append(f"{where}: required field missing")
        else:
            problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return problems
