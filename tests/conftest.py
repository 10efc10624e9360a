"""Shared fixtures: a small graded data set with post-CoT completions, and a tiny model built from it.

The data follows one learnable rule (same product and color: 4; same product, other color: 2;
a near substitute: 3; another product: 1), so a few training steps visibly move the loss.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from relmodel.data.schemas import CoTRecord, GradedPair
from relmodel.format import build_prompt, format_completion
from relmodel.labels import Grade
from relmodel.spec import TinyModelSpec

PRODUCTS = {"shoe": "boot", "phone": "tablet", "kettle": "teapot", "shirt": "blouse"}
COLORS = ("red", "blue", "black")


def _grade_and_item(product: str, color: str, k: int) -> tuple[Grade, str, str]:
    others = [p for p in PRODUCTS if p != product]
    choice = k % 4
    if choice == 0:
        return Grade.EXCELLENT, product, color
    if choice == 1:
        return Grade.MISMATCH, product, COLORS[(COLORS.index(color) + 1) % len(COLORS)]
    if choice == 2:
        return Grade.RELATED, PRODUCTS[product], color
    return Grade.IRRELEVANT, others[k % len(others)], color


def make_pairs(n: int = 48) -> list[GradedPair]:
    pairs = []
    combos = itertools.cycle(itertools.product(PRODUCTS, COLORS))
    for k in range(n):
        product, color = next(combos)
        grade, item, item_color = _grade_and_item(product, color, k)
        pairs.append(GradedPair(query=f"{color} {product}", query_id=f"q{product}-{color}", item_id=f"i{k}",
                                title=f"{item_color} {item} model {k % 7}", attributes={"color": item_color},
                                grade=grade))
    return pairs


def completion_for(pair: GradedPair, grade: Grade | None = None) -> str:
    grade = grade or pair.grade
    steps = [f"the user wants a {pair.query}.", f"the item is a {pair.title}.",
             "category checked.", f"color is {pair.attributes.get('color')}.",
             f"{grade.label}, grade {int(grade)}."]
    return format_completion(grade, steps)


def make_cot(pairs: list[GradedPair]) -> list[CoTRecord]:
    return [CoTRecord(pair=p, completion=completion_for(p), rule_ids=["r1"], teacher="fixture") for p in pairs]


def corpus(pairs: list[GradedPair]) -> list[str]:
    from relmodel.trainers.base import format_corpus

    return format_corpus() + [build_prompt(p.query, p.title, p.attributes) + completion_for(p) for p in pairs]


@pytest.fixture(scope="session")
def pairs() -> list[GradedPair]:
    return make_pairs()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, pairs: list[GradedPair]) -> Path:
    """A tiny random Llama + BPE tokenizer (built once per session, ~1 s)."""
    from relmodel.trainers.base import build_tiny

    target = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny(corpus(pairs), TinyModelSpec(vocab_size=400, hidden_size=48, num_layers=2, num_heads=4, seed=0),
               str(target))
    return target
