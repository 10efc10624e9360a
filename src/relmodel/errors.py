"""Errors a user can act on: each carries a message that says what was wrong and where."""


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
