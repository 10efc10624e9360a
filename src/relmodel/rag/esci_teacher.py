"""An offline teacher for real ESCI-style pairs: no synthetic attributes, evidence read from the text.

`RuleTeacher` composes steps 3-4 from `pair.attributes` (category, color, ...) and words grades in
the synthetic set's semantics (2 = "an explicit constraint is violated"). Real ESCI pairs carry only
a query and a title, and their grades mean Exact / Substitute / Complement / Irrelevant. This teacher
reads the evidence from the text itself (which query terms the title covers, numbers with units,
negations, accessory cues, audience words), words each step in ESCI terms, and cites the retrieved
rule that matches both the gold grade and the evidence. Label-conditioned like RuleTeacher: it
explains the gold grade; the CoT filter (relmodel.rag.cot) checks the result.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from relmodel.data.schemas import GradedPair, Rule
from relmodel.format import format_completion
from relmodel.labels import Grade
from relmodel.rag.teachers import cite

ESCI_NAMES = {Grade.EXCELLENT: "Exact (E)", Grade.RELATED: "a Substitute (S)", Grade.MISMATCH: "a Complement (C)",
              Grade.IRRELEVANT: "Irrelevant (I)"}
_STOP = frozenset({"a", "an", "and", "for", "of", "the", "to", "in", "on", "with", "by", "from", "or", "at", "as",
                   "is", "it", "my", "me", "i", "you", "your", "our"})
_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*(mm|cm|m|inch(?:es)?|in|ft|feet|oz|ml|l|lbs?|gb|tb|w|v|pack|pk|count|ct|"
                     r"pcs|pieces|piece|x)?\b")
_NEGATION = re.compile(r"\b(?:without|no|not|non)\s+([a-z0-9]+)|\b([a-z0-9]+)[- ]free\b")
_ACCESSORY = ("case", "cover", "charger", "cable", "adapter", "refill", "replacement", "holder", "mount", "stand",
              "strap", "bag", "filter", "battery", "batteries", "screen protector", "compatible with", "parts")
_AUDIENCE = ("men", "mens", "women", "womens", "kids", "boys", "girls", "baby", "toddler", "adult", "unisex")
_MAX_TITLE = 160


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _has(title: str, word: str) -> bool:
    """Whether the title has `word` (plural-tolerant) and not as "word-free"/"word free"."""
    return bool(re.search(rf"\b{re.escape(_stem(word))}\w*\b(?![\s-]*free\b)", title))


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@dataclass(frozen=True)
class Evidence:
    """What the pair's text says, independent of the grade."""

    terms: list[str]
    covered: list[str]
    missing: list[str]
    numbers_same: list[str]
    numbers_query_only: list[str]
    negated: list[tuple[str, bool]]  # (excluded word, present in the title)
    accessory_cue: str | None
    audience_query: list[str]
    audience_title: list[str]

    @classmethod
    def of(cls, query: str, title: str) -> Evidence:
        q, t = query.lower(), title.lower()
        negated_words = {a or b for a, b in _NEGATION.findall(q)}
        terms = list(dict.fromkeys(w for w in _words(q) if w not in negated_words and w not in
                                   ("without", "not", "non", "free")))
        title_stems = {_stem(w) for w in _words(t)}
        covered = [w for w in terms if _stem(w) in title_stems]
        qn = {f"{n}{u or ''}" for n, u in _NUMBER.findall(q)}
        tn = {f"{n}{u or ''}" for n, u in _NUMBER.findall(t)}
        cue = next((c for c in _ACCESSORY if re.search(rf"\b{re.escape(c)}\b", t) and c not in q), None)
        return cls(
            terms=terms, covered=covered, missing=[w for w in terms if w not in covered],
            numbers_same=sorted(qn & tn), numbers_query_only=sorted(qn - tn),
            negated=[(w, _has(t, w)) for w in sorted(negated_words)],
            accessory_cue=cue,
            audience_query=[a for a in _AUDIENCE if re.search(rf"\b{a}\b", q)],
            audience_title=[a for a in _AUDIENCE if re.search(rf"\b{a}\b", t)],
        )

    def topics(self) -> set[str]:
        """Rule tags this evidence speaks to (used to pick the rule to cite)."""
        found = set()
        if self.numbers_query_only or self.numbers_same:
            found |= {"size", "quantity", "number", "model number", "pack", "count"}
        if self.negated:
            found |= {"without", "negation", "no", "not", "free"}
        if self.accessory_cue:
            found |= {"accessory", "complement", self.accessory_cue, "compatibility"}
        if self.audience_query or self.audience_title:
            found |= {"men", "women", "kids", "gender", "age"}
        if self.missing:
            found |= {"substitute", "partial", "different product", "irrelevant"}
        return found


def _pick_rule(rules: Sequence[Rule], grade: Grade, evidence: Evidence) -> Rule | None:
    topics = evidence.topics()

    def overlap(rule: Rule) -> int:
        return sum(tag.lower() in topics for tag in rule.tags)

    same_grade = [r for r in rules if r.grade_hint == grade]
    if same_grade:
        return max(same_grade, key=overlap)  # max keeps the first (best retrieved) among ties
    background = [r for r in rules if r.grade_hint is None]
    return max(background, key=overlap) if background else (rules[0] if rules else None)


def _list(words: Sequence[str], limit: int = 5) -> str:
    return ", ".join(f'"{w}"' for w in words[:limit])


class EsciRuleTeacher:
    """Offline, deterministic, label-conditioned; five steps from the pair's text and the retrieved rules."""

    name = "offline-esci-rule-teacher"
    max_concurrency = 1

    def rationale(self, pair: GradedPair, rules: Sequence[Rule]) -> str:
        grade, ev = pair.grade, Evidence.of(pair.query, pair.title)
        query_step = f'"{pair.query}" asks for {_list(ev.terms) or "a product"}'
        if ev.negated:
            query_step += "; it excludes " + _list([w for w, _ in ev.negated])
        title = pair.title if len(pair.title) <= _MAX_TITLE else pair.title[:_MAX_TITLE].rsplit(" ", 1)[0] + " ..."
        item_step = title + (f"; it covers {len(ev.covered)} of {len(ev.terms)} query terms" if ev.terms else "")

        if grade == Grade.EXCELLENT:
            category = "the item is the product the query asks for"
        elif grade == Grade.RELATED:
            category = "the item serves the same need but differs from what was asked, so it could stand in for it"
        elif grade == Grade.MISMATCH:
            category = "the item is not the requested product but is used together with it"
            if ev.accessory_cue:
                category += f" (the title marks it as a {ev.accessory_cue})"
        else:
            category = "the item is not the product asked for and cannot replace it"
            if ev.missing:
                category += f"; the title lacks {_list(ev.missing, 3)}"

        facts = []
        if ev.numbers_same:
            facts.append(f"matching numbers {_list(ev.numbers_same, 3)}")
        if ev.numbers_query_only:
            facts.append(f"the query's {_list(ev.numbers_query_only, 3)} is not in the title")
        for word, present in ev.negated:
            facts.append(f'the excluded "{word}" is {"present" if present else "absent"} in the title')
        if ev.audience_query and not set(ev.audience_query) & set(ev.audience_title):
            facts.append(f"the query is for {_list(ev.audience_query, 2)}, the title "
                         + (f"says {_list(ev.audience_title, 2)}" if ev.audience_title else "names no audience"))
        if ev.missing and grade in (Grade.EXCELLENT, Grade.RELATED):
            facts.append(f"unmatched query terms {_list(ev.missing, 3)}")
        judgement = {
            Grade.EXCELLENT: "nothing in the title contradicts the query's specifications",
            Grade.RELATED: "at least one specification is off or unconfirmed, but the use is the same",
            Grade.MISMATCH: "its specifications serve the requested product, not the query itself",
            Grade.IRRELEVANT: "its attributes do not make it usable for the query",
        }[grade]
        attributes = "; ".join([*facts, judgement])

        rule = _pick_rule(rules, grade, ev)
        verdict = f"the item is {ESCI_NAMES[grade]}, grade {int(grade)}."
        if rule is not None and rule.grade_hint == grade:
            verdict = f"by {cite(rule)}, {rule.text[0].lower()}{rule.text[1:].rstrip('.')}; {verdict}"
        elif rule is not None:  # no retrieved rule states this grade: cite what was weighed, not its conclusion
            verdict = f"{cite(rule)} was weighed, but its case does not decide this pair; {verdict}"
        return format_completion(grade, [query_step, item_step, category, attributes, verdict])
