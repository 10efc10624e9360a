"""The synthetic set: seeded, query-disjoint, paper-like grade skew, and graded by the rule KB."""

from __future__ import annotations

from collections import Counter

import pytest

from relmodel.data import synthetic
from relmodel.data.rules import builtin_rules
from relmodel.labels import Grade
from relmodel.spec import SyntheticDataSpec

SPEC = SyntheticDataSpec(seed=7, train_size=480, eval_size=240)


@pytest.fixture(scope="module")
def examples() -> list[synthetic.SyntheticExample]:
    return synthetic.generate_examples(SPEC)


def test_same_seed_same_output_and_other_seed_differs():
    first, second = synthetic.generate(SPEC), synthetic.generate(SPEC)
    assert [p.model_dump() for p in first[0] + first[1]] == [p.model_dump() for p in second[0] + second[1]]
    other = synthetic.generate(SPEC.model_copy(update={"seed": 8}))
    assert [p.query for p in other[0]] != [p.query for p in first[0]]


def test_sizes_and_query_disjoint_split():
    train, evaluation, rules = synthetic.generate(SPEC)
    assert (len(train), len(evaluation)) == (480, 240)
    assert not {p.query for p in train} & {p.query for p in evaluation}
    assert rules == builtin_rules()
    assert len({p.pair_id for p in train + evaluation}) == 720


@pytest.mark.parametrize("split", ["train", "eval"])
def test_every_grade_and_query_type_with_a_paper_like_skew(examples, split):
    pairs = [e.pair for e in examples if e.split == split]
    grades = Counter(p.grade for p in pairs)
    share = {g: grades[g] / len(pairs) for g in Grade}
    assert 0.32 <= share[Grade.EXCELLENT] <= 0.48
    assert 0.09 <= share[Grade.RELATED] <= 0.21
    assert 0.22 <= share[Grade.MISMATCH] <= 0.38
    assert 0.09 <= share[Grade.IRRELEVANT] <= 0.21
    types = Counter(p.query_type for p in pairs)
    assert set(types) == set(synthetic.QUERY_TYPES)
    assert min(types.values()) >= 0.1 * len(pairs)


def test_every_full_query_has_all_four_grades(examples):
    by_query: dict[str, set[Grade]] = {}
    for e in examples:
        by_query.setdefault(e.pair.query_id or "", set()).add(e.pair.grade)
    full = [grades for qid, grades in by_query.items()
            if sum(e.pair.query_id == qid for e in examples) == synthetic.ITEMS_PER_QUERY]
    assert full and all(grades == set(Grade) for grades in full)


def test_labels_are_the_rules_verdict(examples):
    hints = {r.rule_id: r.grade_hint for r in builtin_rules()}
    for e in examples:
        assert synthetic.grade_item(e.intent, e.pair.attributes)[0] == e.pair.grade
        assert set(e.rule_ids) <= set(hints), e.rule_ids
        decided = [hints[r] for r in e.rule_ids if hints[r] is not None]
        assert decided and all(h == e.pair.grade for h in decided), (e.pair.query, e.pair.title, e.rule_ids)


def test_negated_brand_items_are_mismatch(examples):
    checked = 0
    for e in examples:
        negated = [c.value for c in e.intent.constraints if c.op == "ne" and c.attr == "brand"]
        if negated and e.pair.attributes["brand"] == negated[0] and e.pair.grade != Grade.IRRELEVANT:
            assert e.pair.grade == Grade.MISMATCH
            assert negated[0].lower() in e.pair.query and negated[0] in e.pair.title
            checked += 1
    assert checked >= 5


def test_other_category_is_irrelevant_and_premium_original_is_related(examples):
    for e in examples:
        category = e.pair.attributes["category"]
        if category != e.intent.category and category not in synthetic.substitutes_of(e.intent.category):
            assert e.pair.grade == Grade.IRRELEVANT
    originals = [e for e in examples if e.pair.query_type == "alternative" and "R-ALT-03" in e.rule_ids]
    assert originals and all(e.pair.grade == Grade.RELATED for e in originals)
    assert all(e.pair.attributes["brand"].lower() in e.pair.query for e in originals)


def test_grades_are_decided_by_visible_features():
    """The same (query, title, attributes) never carries two grades: a model can learn the map."""
    train, evaluation, _ = synthetic.generate(SyntheticDataSpec(train_size=4000, eval_size=1000))
    seen: dict[tuple[str, str, str], Grade] = {}
    for p in train + evaluation:
        key = (p.query, p.title, repr(sorted(p.attributes.items())))
        assert seen.setdefault(key, p.grade) == p.grade


def test_titles_show_the_attributes_that_decide():
    intent = synthetic.Intent("running shoes not nike", "negation", "running shoes",
                              (synthetic.Constraint("brand", "ne", "Nike", "R-NEG-01"),))
    attrs = {"category": "running shoes", "brand": "Nike", "color": "red", "audience": "women", "size": "38",
             "material": "mesh", "arch support": "yes", "price": "mid"}
    assert synthetic.grade_item(intent, attrs) == (Grade.MISMATCH, ("R-NEG-01",))
    assert synthetic.item_title(attrs) == "Nike Women's Running Shoes - Red, mesh, Size 38, Arch Support"
    assert synthetic.grade_item(intent, {**attrs, "brand": "Asics"})[0] == Grade.EXCELLENT
    assert synthetic.grade_item(intent, {**attrs, "category": "trail running shoes"})[0] == Grade.MISMATCH
    assert synthetic.grade_item(intent, {**attrs, "brand": "Asics", "category": "walking shoes"})[0] == Grade.RELATED
    assert synthetic.grade_item(intent, {**attrs, "category": "handbag"})[0] == Grade.IRRELEVANT
