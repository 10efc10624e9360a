"""The atomic rule knowledge base: crisp, unique, consistent with the catalogue."""

from __future__ import annotations

import re

import pytest

from relmodel.data import jsonl, synthetic
from relmodel.data.rules import builtin_rules, load_rules
from relmodel.errors import DataError


def test_kb_size_unique_ids_and_tags():
    rules = builtin_rules()
    assert 30 <= len(rules) <= 60
    assert len({r.rule_id for r in rules}) == len(rules)
    assert all(r.tags and len(r.text) < 300 for r in rules)


def test_a_grade_hint_is_the_grade_the_text_states():
    for rule in builtin_rules():
        stated = {int(g) for g in re.findall(r"\((\d)\)", rule.text)}
        if rule.grade_hint is not None:
            assert int(rule.grade_hint) in stated, rule.rule_id


def test_every_rule_the_generator_cites_exists_and_premium_brands_are_listed():
    ids = {r.rule_id for r in builtin_rules()}
    assert set(synthetic.ATTR_RULES.values()) <= ids
    assert set(synthetic.SUBSTITUTES.values()) <= ids
    premium_rule = next(r for r in builtin_rules() if r.rule_id == "R-ALT-04")
    for category in synthetic.CATEGORIES.values():
        for brand in category.premium_brands():
            assert brand in premium_rule.text


def test_load_rules_reads_a_file_or_falls_back_to_builtin(tmp_path):
    assert load_rules(None) == builtin_rules()
    path = tmp_path / "rules.jsonl"
    jsonl.write_jsonl(str(path), builtin_rules()[:3])
    assert load_rules(str(path)) == builtin_rules()[:3]
    path.write_text('{"rule_id": "X", "text": "t", "grade_hint": 7}\n')
    with pytest.raises(DataError, match=r"rules.jsonl:1: grade_hint: unknown grade 7"):
        load_rules(str(path))
