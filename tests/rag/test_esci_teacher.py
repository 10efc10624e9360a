"""The ESCI-aware offline teacher on real ESCI pairs (no synthetic attributes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relmodel.data.rules import load_rules
from relmodel.data.schemas import GradedPair
from relmodel.format import parse_completion
from relmodel.rag.cot import generate_cot
from relmodel.rag.esci_teacher import EsciRuleTeacher, Evidence
from relmodel.rag.retrieval import make_retriever

RULES = Path(__file__).resolve().parents[2] / "examples" / "esci" / "rules.jsonl"
PAIRS = [  # real ESCI-style rows: query and title only
    GradedPair(query="john deere steel toe boots", item_id="a", title="John Deere Mens 8in WP Steel Lace Up Boots",
               grade=4),
    GradedPair(query=".5 lead b ain", item_id="b", title="Pentel Super Hi-Polymer Lead Refill 0.5mm Fine, B, 36 Pieces",
               grade=3),
    GradedPair(query="iphone 12 pro max", item_id="c", title="Silicone Case Compatible with iPhone 12 Pro Max",
               grade=2),
    GradedPair(query="shampoo without sulfates", item_id="d", title="Garden Hose 50 ft Expandable", grade=1),
]


def test_every_grade_gets_a_parsable_label_conditioned_rationale() -> None:
    retriever = make_retriever("bm25", load_rules(str(RULES)))
    batch = generate_cot(PAIRS, retriever, EsciRuleTeacher(), top_k=4, max_chars=1200)
    assert not batch.rejected, [r.reason for r in batch.rejected]
    for record in batch.accepted:
        parsed = parse_completion(record.completion)
        assert parsed.grade == record.pair.grade == parsed.verdict_grade
        assert record.pair.title[:20] in parsed.steps[1]
    complement = next(r for r in batch.accepted if r.pair.item_id == "c")
    assert "case" in complement.completion and "Complement" in complement.completion


@pytest.mark.parametrize(("query", "title", "expected"), [
    ("shampoo without sulfates", "Sulfate Free Shampoo", "negation"),
    ("12 pack aa batteries", "AA Batteries 24 count", "size"),
    ("iphone 12", "Clear Case for iPhone 12", "accessory"),
])
def test_evidence_is_read_from_the_text(query: str, title: str, expected: str) -> None:
    assert expected in Evidence.of(query, title).topics()
