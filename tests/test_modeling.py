"""grade_token_ids accepts single-token grades and refuses a tokenizer that splits a grade."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from relmodel.errors import TokenizerError
from relmodel.modeling import SAMPLE_PROMPT, grade_token_ids, load_tokenizer, render_prompt


def char_tokenizer(split_three: bool) -> PreTrainedTokenizerFast:
    """One token per character; with split_three, "3" is normalised to "#3", i.e. two tokens."""
    chars = sorted(set(SAMPLE_PROMPT) | set("1234#"))
    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(["<unk>", "<eos>", *chars])}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    if split_three:
        tok.normalizer = normalizers.Replace("3", "#3")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")


def test_char_tokenizer_passes() -> None:
    tokenizer = char_tokenizer(split_three=False)
    assert grade_token_ids(tokenizer) == [tokenizer.convert_tokens_to_ids(g) for g in "1234"]


def test_grade_split_in_two_tokens_is_refused() -> None:
    with pytest.raises(TokenizerError, match=r"grade '3' is 2 tokens for this tokenizer: \['#', '3'\]"):
        grade_token_ids(char_tokenizer(split_three=True))


def test_tiny_tokenizer_grades_are_single_tokens(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_model_dir))
    ids = grade_token_ids(tokenizer)
    assert [tokenizer.decode([i]) for i in ids] == ["1", "2", "3", "4"]
    assert grade_token_ids(tokenizer, chat_template=True) == ids


def test_file_uri_and_chat_template(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(f"file://{tiny_model_dir}")
    rendered = render_prompt(tokenizer, "hello", chat_template=True)
    assert rendered.startswith("<|user|>\nhello") and rendered.endswith("<|assistant|>\n")
    assert render_prompt(tokenizer, "hello", chat_template=False) == "hello"


def test_chat_template_missing_is_a_clear_error() -> None:
    with pytest.raises(TokenizerError, match="no chat template"):
        render_prompt(char_tokenizer(split_three=False), "hello", chat_template=True)
