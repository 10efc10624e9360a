"""Retrieval finds the rule that governs a pair, lexically and densely; auto falls back to BM25."""

from __future__ import annotations

import logging

import pytest

from relmodel.data.rules import builtin_rules
from relmodel.data.schemas import GradedPair
from relmodel.rag import retrieval

NEGATION = GradedPair(query="running shoes not nike", item_id="i1", query_type="negation", grade=2,
                      title="Nike Men's Running Shoes - Red, mesh, Size 42",
                      attributes={"category": "running shoes", "brand": "Nike", "audience": "men", "color": "red"})
DUPE = GradedPair(query="gucci handbag dupe", item_id="i2", query_type="alternative", grade=3,
                  title="Gucci Handbag - Black, leather",
                  attributes={"category": "handbag", "brand": "Gucci", "price": "premium"})
KINDLE = GradedPair(query="cover for my kindle paperwhite", item_id="i3", query_type="knowledge", grade=2,
                    title="MoKo E-Reader Case - Red, fabric, for Kobo Clara",
                    attributes={"category": "e-reader case", "compatible with": "Kobo Clara"})


@pytest.fixture(scope="module")
def embedding() -> retrieval.EmbeddingRetriever:
    return retrieval.EmbeddingRetriever(builtin_rules())


def _ids(retriever: retrieval.Retriever, pair: GradedPair, k: int = 3) -> list[str]:
    return [r.rule_id for r in retriever.retrieve([pair], k)[0]]


@pytest.mark.parametrize(("pair", "expected"), [(NEGATION, "R-NEG-01"), (DUPE, "R-ALT-03"), (KINDLE, "R-KNOW-02")])
def test_bm25_finds_the_governing_rule(pair, expected):
    assert expected in _ids(retrieval.BM25Retriever(builtin_rules()), pair)


@pytest.mark.parametrize(("pair", "expected"), [(NEGATION, "R-NEG-01"), (KINDLE, "R-KNOW-02")])
def test_embedding_finds_the_governing_rule(embedding, pair, expected):
    assert embedding.name == "embedding:all-MiniLM-L6-v2"
    assert expected in _ids(embedding, pair)


def test_results_are_k_distinct_rules_and_batches_match_single_calls(embedding):
    for retriever in (retrieval.BM25Retriever(builtin_rules()), embedding):
        batch = retriever.retrieve([NEGATION, DUPE, KINDLE], 5)
        assert [len({r.rule_id for r in rules}) for rules in batch] == [5, 5, 5]
        assert [r.rule_id for r in batch[1]] == _ids(retriever, DUPE, 5)
        assert retriever.retrieve([], 3) == []


def test_auto_prefers_embedding_and_falls_back_to_bm25(monkeypatch, caplog, embedding):
    monkeypatch.setattr(retrieval, "load_embedding_model", lambda: embedding._model)
    assert retrieval.make_retriever("auto", builtin_rules()).name.startswith("embedding")

    def unavailable():
        raise retrieval.RetrieverUnavailable("model files missing")

    monkeypatch.setattr(retrieval, "load_embedding_model", unavailable)
    with caplog.at_level(logging.INFO, logger="relmodel.rag"):
        assert retrieval.make_retriever("auto", builtin_rules()).name == "bm25"
    assert "model files missing" in caplog.text and "using bm25" in caplog.text
    with pytest.raises(retrieval.RetrieverUnavailable):
        retrieval.make_retriever("embedding", builtin_rules())


def test_no_rules_is_a_clear_error():
    with pytest.raises(retrieval.RetrieverUnavailable, match="no rules"):
        retrieval.BM25Retriever([])
