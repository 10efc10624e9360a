"""A seeded synthetic e-commerce relevance set with the query mix TaoSR1 stresses.

Five query types (head, negation, affordable alternative, Q&A, knowledge) over a small product
catalogue. Each query is an `Intent`: a target category plus explicit or implied `Constraint`s.
Items are sampled to aim at a grade, but the label is always computed by `grade_item`, which
applies the atomic rules of `relmodel.data.rules` in their stated precedence (R-GEN-04):

    different category -> 1;  a violated constraint -> 2;
    near substitute / attribute not stated / the premium original of a dupe query -> 3;  else 4.

So the label is a deterministic function of the (query, item) text a model sees, and every label
names the rule that decided it. Same seed, same output; train and eval never share a query text.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from relmodel.data.rules import builtin_rules
from relmodel.data.schemas import GradedPair, QueryType, Rule
from relmodel.labels import Grade
from relmodel.spec import SyntheticDataSpec

ITEMS_PER_QUERY = 8
QUERY_TYPES: tuple[QueryType, ...] = ("head", "negation", "alternative", "qa", "knowledge")
# Target mix (paper-like skew): L4 40%, L3 15%, L2 30%, L1 15%. Every query gets one item of each
# grade, the other four are drawn with these weights so that the totals land on the target.
_EXTRA_WEIGHTS: dict[Grade, float] = {Grade.EXCELLENT: 0.55, Grade.RELATED: 0.05,
                                      Grade.MISMATCH: 0.35, Grade.IRRELEVANT: 0.05}

# --- catalogue -------------------------------------------------------------------------------------

BUDGET, MID, PREMIUM = "budget", "mid", "premium"
COLORS = ("black", "white", "red", "blue", "grey", "pink", "green")
SHOE_SIZES = tuple(str(s) for s in range(36, 46))


@dataclass(frozen=True)
class Category:
    """A leaf category: its brands (with price band) and the attributes its items carry."""

    name: str
    brands: Mapping[str, str]
    attrs: Mapping[str, tuple[str, ...]]
    head_attrs: tuple[str, ...]  # attributes a head query may name

    def premium_brands(self) -> list[str]:
        return [b for b, band in self.brands.items() if band == PREMIUM]


def _shoes(name: str, brands: Mapping[str, str], **extra: tuple[str, ...]) -> Category:
    attrs = {"color": COLORS, "audience": ("men", "women", "kids", "unisex"), "size": SHOE_SIZES,
             "material": ("mesh", "knit", "leather", "synthetic"), **extra}
    return Category(name, brands, attrs, ("brand", "color", "audience", "size", "material"))


_RUN_BRANDS = {"Nike": MID, "Adidas": MID, "Asics": MID, "Brooks": MID, "Kalenji": BUDGET, "Skechers": BUDGET}
_BAG_BRANDS = {"Gucci": PREMIUM, "Prada": PREMIUM, "Louis Vuitton": PREMIUM, "Fossil": MID,
               "Kate Spade": MID, "Lovevook": BUDGET}
_PACK_BRANDS = {"Tumi": PREMIUM, "Louis Vuitton": PREMIUM, "Herschel": MID, "Samsonite": MID,
                "Amazon Basics": BUDGET, "Matein": BUDGET}
_AUDIO_BRANDS = {"Bose": PREMIUM, "Apple": PREMIUM, "Sony": MID, "Anker Soundcore": BUDGET, "JLab": BUDGET}
_MAT_BRANDS = {"Lululemon": PREMIUM, "Manduka": PREMIUM, "Gaiam": MID, "Amazon Basics": BUDGET,
               "BalanceFrom": BUDGET}
_BAG_ATTRS = {"color": COLORS, "material": ("leather", "vegan leather", "canvas")}
_PACK_ATTRS = {"color": COLORS, "material": ("nylon", "canvas", "leather", "polyester"),
               "laptop size": ("13 inch", "15 inch", "17 inch")}
_DRINK_ATTRS = {"sugar": ("regular", "sugar-free"), "pack": ("6 x 330 ml", "12 x 330 ml", "1.5 l bottle")}
_AUDIO_ATTRS = {"color": ("black", "white", "blue", "pink"), "noise cancelling": ("yes", "no"),
                "waterproof": ("yes", "no")}
_MAT_ATTRS = {"color": COLORS, "material": ("natural rubber", "TPE", "PVC", "cork"),
              "thickness": ("4 mm", "6 mm", "10 mm")}
_CASE_MATERIALS = ("leather", "fabric", "silicone")
PHONES = ("iPhone 15", "iPhone 14", "Galaxy S24", "Pixel 8")
KINDLES = ("Kindle Paperwhite", "Kindle Oasis")

CATEGORIES: dict[str, Category] = {c.name: c for c in (
    _shoes("running shoes", _RUN_BRANDS, **{"arch support": ("yes", "no")}),
    _shoes("trail running shoes", _RUN_BRANDS, **{"arch support": ("yes", "no")}),
    _shoes("walking shoes", _RUN_BRANDS, **{"arch support": ("yes", "no")}),
    _shoes("hiking boots", {"Salomon": MID, "Merrell": MID, "Columbia": MID, "Quechua": BUDGET},
           waterproof=("yes", "no")),
    Category("handbag", _BAG_BRANDS, _BAG_ATTRS, ("brand", "color", "material")),
    Category("crossbody bag", _BAG_BRANDS, _BAG_ATTRS, ("brand", "color", "material")),
    Category("backpack", _PACK_BRANDS, _PACK_ATTRS, ("brand", "color", "material")),
    Category("laptop bag", _PACK_BRANDS, _PACK_ATTRS, ("brand", "color", "material")),
    Category("cola", {"Coca-Cola": MID, "Pepsi": MID, "RC Cola": BUDGET, "Virgil's": MID},
             _DRINK_ATTRS, ("brand", "pack")),
    Category("lemon soda", {"Sprite": MID, "7UP": MID, "San Pellegrino": MID, "Schweppes": MID},
             _DRINK_ATTRS, ("brand", "pack")),
    Category("e-reader case", {"Fintie": BUDGET, "MoKo": BUDGET, "Amazon": MID},
             {"color": COLORS, "material": _CASE_MATERIALS,
              "compatible with": (*KINDLES, "Kobo Clara", "Kobo Libra")}, ("color", "material")),
    Category("tablet sleeve", {"Tomtoc": MID, "MoKo": BUDGET, "Fintie": BUDGET},
             {"color": COLORS, "material": _CASE_MATERIALS,
              "compatible with": ("iPad Air", "iPad Pro 11", "Galaxy Tab S9")}, ("color", "material")),
    Category("phone case", {"OtterBox": MID, "Spigen": MID, "ESR": BUDGET, "Casetify": MID},
             {"color": COLORS, "material": ("silicone", "leather", "plastic"), "compatible with": PHONES},
             ("brand", "color", "material", "compatible with")),
    Category("headphones", _AUDIO_BRANDS, _AUDIO_ATTRS, ("brand", "color")),
    Category("earbuds", {**_AUDIO_BRANDS, "Shokz": MID}, _AUDIO_ATTRS, ("brand", "color")),
    Category("yoga mat", _MAT_BRANDS, _MAT_ATTRS, ("brand", "color", "material", "thickness")),
    Category("exercise mat", _MAT_BRANDS, _MAT_ATTRS, ("brand", "color", "material", "thickness")),
)}

# Near substitutes (grade 3 when the explicit constraints hold), each backed by one rule.
SUBSTITUTES: dict[frozenset[str], str] = {
    frozenset({"running shoes", "trail running shoes"}): "R-SUB-01",
    frozenset({"running shoes", "walking shoes"}): "R-SUB-02",
    frozenset({"trail running shoes", "hiking boots"}): "R-SUB-03",
    frozenset({"handbag", "crossbody bag"}): "R-SUB-04",
    frozenset({"backpack", "laptop bag"}): "R-SUB-05",
    frozenset({"cola", "lemon soda"}): "R-SUB-06",
    frozenset({"e-reader case", "tablet sleeve"}): "R-SUB-07",
    frozenset({"headphones", "earbuds"}): "R-SUB-08",
    frozenset({"yoga mat", "exercise mat"}): "R-SUB-09",
}


def substitutes_of(category: str) -> list[str]:
    return sorted(other for pair in SUBSTITUTES for other in pair if category in pair and other != category)


# --- intents and grading ---------------------------------------------------------------------------

Op = Literal["eq", "ne", "ge", "alt"]
# Which rule a violated explicit attribute cites.
ATTR_RULES = {"brand": "R-ATTR-01", "color": "R-ATTR-02", "audience": "R-ATTR-03", "size": "R-ATTR-04",
              "material": "R-ATTR-05", "compatible with": "R-ATTR-06", "pack": "R-ATTR-07",
              "thickness": "R-ATTR-08"}


@dataclass(frozen=True)
class Constraint:
    """One requirement on an item attribute; `rule_id` is the rule a violation cites.

    eq: attribute equals value (a unisex item satisfies men/women); ne: attribute differs (negation);
    ge: numeric attribute at least value ("fits a 15 inch laptop"); alt: affordable alternative to
    premium brand `value` (attribute is "brand").
    """

    attr: str
    op: Op
    value: str
    rule_id: str


@dataclass(frozen=True)
class Intent:
    """What a query asks for: a category and constraints, plus knowledge rules that map its words."""

    query: str
    query_type: QueryType
    category: str
    constraints: tuple[Constraint, ...]
    rule_ids: tuple[str, ...] = ()


def _number(value: str) -> float:
    match = re.match(r"\d+(\.\d+)?", value)
    return float(match.group(0)) if match else 0.0


def satisfies(constraint: Constraint, attrs: Mapping[str, str]) -> bool | None:
    """True/False, or None when the item does not state the attribute (uncertain)."""
    have = attrs.get(constraint.attr)
    if have is None:
        return None
    if constraint.op == "eq":
        if constraint.attr == "audience" and have == "unisex":
            return constraint.value in ("men", "women")
        return have == constraint.value
    if constraint.op == "ne":
        return have != constraint.value
    if constraint.op == "ge":
        return _number(have) >= _number(constraint.value)
    # alt: the premium original itself is not a violation (it is Related, see grade_item)
    return have == constraint.value or attrs.get("price") != PREMIUM


def grade_item(intent: Intent, attrs: Mapping[str, str]) -> tuple[Grade, tuple[str, ...]]:
    """The grade of an item (its attributes incl. "category") for an intent, and the deciding rules."""
    category = attrs["category"]
    substitute_rule = SUBSTITUTES.get(frozenset({intent.category, category}))
    if category != intent.category and substitute_rule is None:
        return Grade.IRRELEVANT, ("R-GEN-02",)
    results = [(c, satisfies(c, attrs)) for c in intent.constraints]
    violated = [c.rule_id for c, ok in results if ok is False]
    if violated:
        return Grade.MISMATCH, tuple(dict.fromkeys(violated))
    related: list[str] = []
    if substitute_rule is not None:
        related.append(substitute_rule)
    if any(ok is None for _, ok in results):
        related.append("R-GEN-03")
    if any(c.op == "alt" and attrs.get("brand") == c.value for c in intent.constraints):
        related.append("R-ALT-03")
    if related:
        return Grade.RELATED, tuple(related)
    if any(c.op == "alt" for c in intent.constraints):
        return Grade.EXCELLENT, ("R-ALT-01",)
    if any(c.op == "ne" and c.attr == "brand" for c in intent.constraints):
        return Grade.EXCELLENT, ("R-NEG-02",)
    return Grade.EXCELLENT, ("R-GEN-01",)


# --- query sampling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Need:
    """A Q&A or knowledge intent: question/phrase templates that imply a category and constraints."""

    category: str
    constraints: tuple[Constraint, ...]
    texts: tuple[str, ...]
    rule_ids: tuple[str, ...] = ()
    needs_explicit: bool = False  # no violable implied constraint: add an explicit one


def _eq(attr: str, value: str, rule_id: str | None = None) -> Constraint:
    return Constraint(attr, "eq", value, rule_id or ATTR_RULES[attr])


_QA_NEEDS: tuple[_Need, ...] = (
    _Need("running shoes", (_eq("arch support", "yes", "R-QA-02"),),
          ("what shoes are good for flat feet", "which running shoes help with flat feet",
           "what trainers work for flat feet"), ("R-QA-01",)),
    *(_Need("backpack", (Constraint("laptop size", "ge", f"{n} inch", "R-QA-03"),),
            (f"which backpack fits a {n} inch laptop", f"what backpack can hold a {n} inch laptop"), ("R-QA-01",))
      for n in (15, 17)),
    _Need("headphones", (_eq("noise cancelling", "yes", "R-QA-04"),),
          ("what headphones are best for long flights", "which headphones block airplane noise"), ("R-QA-01",)),
    _Need("cola", (_eq("sugar", "sugar-free", "R-QA-05"),),
          ("what cola can i drink on keto", "which cola is ok on a keto diet"), ("R-QA-01",)),
    _Need("yoga mat", (Constraint("material", "ne", "PVC", "R-QA-06"),),
          ("what yoga mat works for hot yoga", "which mat is best for hot yoga"), ("R-QA-01",)),
    _Need("hiking boots", (_eq("waterproof", "yes", "R-QA-07"),),
          ("what boots keep feet dry on rainy hikes", "which hiking boots are good for wet trails"), ("R-QA-01",)),
)
_KNOWLEDGE_NEEDS: tuple[_Need, ...] = (
    _Need("running shoes", (), ("marathon shoes", "shoes for a marathon", "half marathon trainers"),
          ("R-KNOW-01",), needs_explicit=True),
    *(_Need("e-reader case", (_eq("compatible with", k),), (f"{k} cover", f"cover for my {k}"), ("R-KNOW-02",))
      for k in KINDLES),
    *(_Need("phone case", (_eq("compatible with", p),), (f"{p} bumper", f"cover for {p}"), ("R-KNOW-03",))
      for p in PHONES),
    _Need("earbuds", (_eq("waterproof", "yes", "R-KNOW-04"),),
          ("earbuds for swimming", "headphones for lap swimming", "pool earbuds")),
    _Need("hiking boots", (), ("boots for trekking the alps", "mountain trekking boots"), ("R-KNOW-05",),
          needs_explicit=True),
    _Need("cola", (_eq("sugar", "sugar-free", "R-KNOW-06"),), ("cola for diabetics", "diabetic friendly cola")),
    _Need("backpack", (Constraint("laptop size", "ge", "17 inch", "R-KNOW-07"),),
          ("backpack for macbook pro 16", "macbook pro 16 backpack")),
    _Need("backpack", (Constraint("laptop size", "ge", "15 inch", "R-KNOW-07"),), ("backpack for macbook air 15",)),
    _Need("yoga mat", (Constraint("material", "ne", "PVC", "R-QA-06"),), ("bikram yoga mat", "mat for bikram"),
          ("R-KNOW-08",)),
)
_AUDIENCE_WORD = {"men": "men's", "women": "women's", "kids": "kids'"}


def _describe(category: str, eq: Mapping[str, str]) -> str:
    """Head-query wording for a category and explicit attribute values, e.g. "red nike running shoes"."""
    before = [eq.get("brand", ""), eq.get("color", ""), _AUDIENCE_WORD.get(eq.get("audience", ""), ""),
              eq.get("material", "")]
    after = [f"for {eq['compatible with']}" if "compatible with" in eq else "",
             f"size {eq['size']}" if "size" in eq else "", eq.get("pack", ""), eq.get("thickness", "")]
    return " ".join(w for w in (*before, category, *after) if w).lower()


def _explicit(rng: random.Random, category: Category, count: int, exclude: Sequence[str] = ()) -> dict[str, str]:
    """`count` random explicit attribute values a head query could name."""
    names = [a for a in category.head_attrs if a not in exclude]
    chosen = rng.sample(names, min(count, len(names)))
    values = {a: rng.choice(list(category.brands) if a == "brand" else category.attrs[a]) for a in chosen}
    if values.get("audience") == "unisex":
        values["audience"] = rng.choice(("men", "women"))
    return values


def _eq_constraints(values: Mapping[str, str]) -> tuple[Constraint, ...]:
    return tuple(_eq(a, v) for a, v in values.items())


def _head(rng: random.Random) -> Intent:
    cat = CATEGORIES[rng.choice(sorted(CATEGORIES))]
    values = _explicit(rng, cat, rng.choice((1, 1, 2)))
    return Intent(_describe(cat.name, values), "head", cat.name, _eq_constraints(values))


def _negation(rng: random.Random) -> Intent:
    cat = CATEGORIES[rng.choice(sorted(CATEGORIES))]
    kinds = ["brand"]
    kinds += ["material"] * any(m in cat.attrs.get("material", ()) for m in ("leather", "PVC"))
    kinds += ["sugar"] * ("sugar" in cat.attrs)
    kind = rng.choice(kinds)
    values = _explicit(rng, cat, rng.choice((0, 0, 1)), exclude=("brand", "material"))
    desc = _describe(cat.name, values)
    if kind == "sugar":
        text = rng.choice(("sugar-free {d}", "zero sugar {d}", "{d} without sugar", "{d} no sugar")).format(d=desc)
        negated = _eq("sugar", "sugar-free", "R-NEG-04")
    elif kind == "material":
        material = rng.choice([m for m in ("leather", "PVC") if m in cat.attrs["material"]])
        text = rng.choice(("{d} not {m}", "{m}-free {d}", "{d} without {m}")).format(d=desc, m=material.lower())
        negated = Constraint("material", "ne", material, "R-NEG-03")
    else:
        brand = rng.choice(list(cat.brands))
        text = rng.choice(("{d} not {b}", "{d} without {b}", "non {b} {d}", "{d} except {b}")).format(
            d=desc, b=brand.lower())
        negated = Constraint("brand", "ne", brand, "R-NEG-01")
    return Intent(text, "negation", cat.name, (negated, *_eq_constraints(values)), ("R-NEG-05",))


def _alternative(rng: random.Random) -> Intent:
    cat = CATEGORIES[rng.choice(sorted(c.name for c in CATEGORIES.values() if len(c.premium_brands()) >= 2))]
    premium = rng.choice(cat.premium_brands())
    values = _explicit(rng, cat, rng.choice((0, 0, 1)), exclude=("brand",))
    desc = _describe(cat.name, values)
    text = rng.choice(("cheap alternative to {p} {d}", "{p} {d} dupe", "affordable {d} like {p}")).format(
        p=premium.lower(), d=desc)
    alt = Constraint("brand", "alt", premium, "R-ALT-02")
    return Intent(text, "alternative", cat.name, (alt, *_eq_constraints(values)), ("R-ALT-04",))


def _from_need(rng: random.Random, needs: Sequence[_Need], query_type: QueryType) -> Intent:
    need = rng.choice(needs)
    cat = CATEGORIES[need.category]
    text = rng.choice(need.texts).lower()
    extra: dict[str, str] = {}
    suffixes = {"audience": "for {v}", "color": "in {v}", "size": "size {v}", "pack": "{v}"}
    options = [a for a in suffixes if a in cat.attrs]
    if options and (need.needs_explicit or rng.random() < 0.5):
        attr = rng.choice(options)
        extra = {attr: rng.choice(cat.attrs[attr])}
        if extra.get("audience") == "unisex":
            extra["audience"] = "women"
        text = f"{text} {suffixes[attr].format(v=extra[attr]).lower()}"
    return Intent(text, query_type, cat.name, (*need.constraints, *_eq_constraints(extra)), need.rule_ids)


def sample_intent(rng: random.Random, query_type: QueryType) -> Intent:
    """A random query of the given type that admits items of all four grades."""
    while True:
        intent = _sample_any_intent(rng, query_type)
        if _related_routes(intent):
            return intent


def _sample_any_intent(rng: random.Random, query_type: QueryType) -> Intent:
    if query_type == "head":
        return _head(rng)
    if query_type == "negation":
        return _negation(rng)
    if query_type == "alternative":
        return _alternative(rng)
    if query_type == "qa":
        return _from_need(rng, _QA_NEEDS, "qa")
    return _from_need(rng, _KNOWLEDGE_NEEDS, "knowledge")


# --- item sampling ---------------------------------------------------------------------------------


def _random_attrs(rng: random.Random, category: Category) -> dict[str, str]:
    attrs = {"category": category.name, "brand": rng.choice(list(category.brands))}
    attrs.update({a: rng.choice(values) for a, values in category.attrs.items()})
    return attrs


def _values(category: Category, attr: str) -> tuple[str, ...]:
    return tuple(category.brands) if attr == "brand" else category.attrs.get(attr, ())


def _apply(rng: random.Random, category: Category, attrs: dict[str, str], c: Constraint, hold: bool) -> bool:
    """Set the item's attribute so that `c` holds (or is violated); False when impossible."""
    values = _values(category, c.attr)
    probe = dict(attrs)
    if c.op == "alt":
        wanted = [b for b in values if b != c.value and (category.brands[b] != PREMIUM) == hold]
    else:
        wanted = [v for v in values if satisfies(c, {**probe, c.attr: v}) is hold]
    if not wanted:
        return False
    attrs[c.attr] = rng.choice(wanted)
    return True


def _usable_substitutes(intent: Intent) -> list[str]:
    # a substitute cannot be "brand X" if it has no brand X (hiking boots for "nike trail shoes")
    return [s for s in substitutes_of(intent.category)
            if all(c.op != "eq" or c.attr != "brand" or c.value in CATEGORIES[s].brands for c in intent.constraints)]


def _related_routes(intent: Intent) -> list[str]:
    """How an item can be Related (3) for this intent: substitute, unstated attribute, dupe original."""
    routes = ["substitute"] * bool(_usable_substitutes(intent))
    routes += ["uncertain"] * any(c.attr != "brand" for c in intent.constraints)
    routes += ["original"] * any(c.op == "alt" for c in intent.constraints)
    return routes


def _sample_item(rng: random.Random, intent: Intent, target: Grade) -> dict[str, str]:
    """Attributes of an item aimed at `target`; the label is computed afterwards by grade_item."""
    if target == Grade.IRRELEVANT:
        others = sorted(set(CATEGORIES) - {intent.category, *substitutes_of(intent.category)})
        return _random_attrs(rng, CATEGORIES[rng.choice(others)])
    mechanism = rng.choice(_related_routes(intent)) if target == Grade.RELATED else "exact"
    if mechanism == "substitute":
        category = CATEGORIES[rng.choice(_usable_substitutes(intent))]
    else:
        category = CATEGORIES[intent.category]
    attrs = _random_attrs(rng, category)
    for c in intent.constraints:
        if c.attr in attrs and not _apply(rng, category, attrs, c, hold=True):
            attrs.pop(c.attr)  # a substitute that cannot meet it (a tablet sleeve for a Kindle): unstated
    if target == Grade.MISMATCH:
        order = list(intent.constraints)
        rng.shuffle(order)
        next((c for c in order if c.attr in attrs and _apply(rng, category, attrs, c, hold=False)), None)
    elif mechanism == "uncertain":
        attrs.pop(rng.choice([c.attr for c in intent.constraints if c.attr != "brand"]), None)
    elif mechanism == "original":
        attrs["brand"] = next(c.value for c in intent.constraints if c.op == "alt")
    attrs["price"] = category.brands[attrs["brand"]]
    return attrs


def item_title(attrs: Mapping[str, str]) -> str:
    """A shop-style title that shows every stated attribute the grade depends on."""
    audience = _AUDIENCE_WORD.get(attrs.get("audience", ""), "Unisex" if attrs.get("audience") == "unisex" else "")
    head = " ".join(w for w in (attrs["brand"], audience.capitalize(), attrs["category"].title()) if w)
    details = [attrs.get("color", "").capitalize(), attrs.get("material", ""),
               f"Size {attrs['size']}" if "size" in attrs else "", attrs.get("pack", ""), attrs.get("thickness", ""),
               f"for {attrs['compatible with']}" if "compatible with" in attrs else "",
               f"{attrs['laptop size']} Laptop Compartment" if "laptop size" in attrs else ""]
    details += [flag.title() for flag in ("arch support", "waterproof", "noise cancelling") if attrs.get(flag) == "yes"]
    details += ["Sugar-Free" if attrs.get("sugar") == "sugar-free" else "Classic" if "sugar" in attrs else ""]
    return f"{head} - {', '.join(d for d in details if d)}"


# --- the data set ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticExample:
    """One generated pair with the intent behind its query and the rules that decided its grade."""

    pair: GradedPair
    split: Literal["train", "eval"]
    intent: Intent
    rule_ids: tuple[str, ...]


@dataclass
class _Split:
    size: int
    examples: list[SyntheticExample] = field(default_factory=list)
    texts: set[str] = field(default_factory=set)
    queries: int = 0

    @property
    def fill(self) -> float:
        return len(self.examples) / self.size


def split_of(query: str) -> Literal["train", "eval"]:
    """Each query text belongs to one split, by a stable hash: the splits can never share a query."""
    return "eval" if hashlib.sha256(query.encode()).digest()[0] < 128 else "train"


def _query_examples(rng: random.Random, intent: Intent, query_id: str,
                    split: Literal["train", "eval"]) -> list[SyntheticExample]:
    targets = [Grade.EXCELLENT, Grade.RELATED, Grade.MISMATCH, Grade.IRRELEVANT]
    targets += rng.choices(list(_EXTRA_WEIGHTS), weights=list(_EXTRA_WEIGHTS.values()), k=ITEMS_PER_QUERY - 4)
    rng.shuffle(targets)
    examples = []
    for k, target in enumerate(targets):
        attrs = _sample_item(rng, intent, target)
        grade, rule_ids = grade_item(intent, attrs)
        pair = GradedPair(query_id=query_id, query=intent.query, item_id=f"{query_id}-i{k}",
                          title=item_title(attrs), attributes=attrs, grade=grade, query_type=intent.query_type)
        examples.append(SyntheticExample(pair, split, intent, (*rule_ids, *intent.rule_ids)))
    return examples


def generate_examples(spec: SyntheticDataSpec) -> list[SyntheticExample]:
    """Train then eval examples; within each split the query types take turns."""
    rng = random.Random(spec.seed)
    splits: dict[Literal["train", "eval"], _Split] = {"train": _Split(spec.train_size), "eval": _Split(spec.eval_size)}
    queries = misses = 0
    while (name := min(splits, key=lambda n: splits[n].fill)) and splits[name].fill < 1:
        split = splits[name]
        intent = sample_intent(rng, QUERY_TYPES[split.queries % len(QUERY_TYPES)])
        # Prefer distinct queries; after many misses (huge sizes) allow repeats inside one split.
        if split_of(intent.query) != name or (intent.query in split.texts and misses < 50):
            misses += 1
            continue
        queries, misses, split.queries = queries + 1, 0, split.queries + 1
        split.texts.add(intent.query)
        room = split.size - len(split.examples)
        split.examples += _query_examples(rng, intent, f"syn-{queries:05d}", name)[:room]
    return splits["train"].examples + splits["eval"].examples


def generate(spec: SyntheticDataSpec) -> tuple[list[GradedPair], list[GradedPair], list[Rule]]:
    """(train pairs, eval pairs, the atomic rules that grade them): seeded and query-disjoint."""
    examples = generate_examples(spec)
    train = [e.pair for e in examples if e.split == "train"]
    evaluation = [e.pair for e in examples if e.split == "eval"]
    return train, evaluation, builtin_rules()
