"""The built-in knowledge base of atomic relevance rules (TaoSR1 §1.4: complex guidelines split
into small, self-contained rules that a RAG teacher retrieves and cites).

The synthetic generator (`relmodel.data.synthetic`) grades every pair with exactly these rules and
records which rule decided, so the KB and the labels cannot drift apart (tests check both ways).
Each rule states one fact and, where it decides a grade, that grade (`grade_hint`); knowledge
rules that only map words to products carry no hint.
"""

from __future__ import annotations

from relmodel.data import jsonl
from relmodel.data.schemas import Rule

# (rule_id, grade_hint, tags, text). Tags add retrieval keywords; keep texts one sentence-ish.
_RULES: tuple[tuple[str, int | None, tuple[str, ...], str], ...] = (
    # --- general grading ---------------------------------------------------------------------
    ("R-GEN-01", 4, ("head", "match", "excellent"),
     "An item of the requested product category that meets every explicit constraint of the query "
     "(brand, color, size, audience, material, compatibility) is Excellent (4)."),
    ("R-GEN-02", 1, ("category", "irrelevant"),
     "An item from a different product category than the one the query asks for is Irrelevant (1), "
     "even when its brand, color or material match words of the query."),
    ("R-GEN-03", 3, ("uncertain", "missing attribute", "related"),
     "If the item leaves out an attribute the query explicitly asks for (its color, size, sugar or "
     "compatibility is unstated), the match is uncertain and the item is Related (3), short of Excellent."),
    ("R-GEN-04", None, ("precedence", "priority"),
     "Decide in this order: a different category gives 1; otherwise any violated explicit constraint "
     "gives 2; otherwise a near substitute or an uncertain attribute gives 3; otherwise 4."),
    ("R-GEN-05", 3, ("substitute", "related", "near substitute"),
     "A near-substitute product that meets the explicit constraints is Related (3): it serves the "
     "same need but is a different product from the one asked for."),
    # --- explicit attributes (head queries) ------------------------------------------------------
    ("R-ATTR-01", 2, ("head", "brand", "mismatch"),
     "When the query names a brand, an item of the right category but another brand is a Mismatch (2)."),
    ("R-ATTR-02", 2, ("head", "color", "colour", "mismatch"),
     "When the query names a color, an item of the right category in another color is a Mismatch (2)."),
    ("R-ATTR-03", 2, ("head", "audience", "men", "women", "kids", "mismatch"),
     "When the query names an audience (men, women, kids), an item for another audience is a "
     "Mismatch (2); a unisex item satisfies a men's or women's query, and a kids' query only by a kids' item."),
    ("R-ATTR-04", 2, ("head", "size", "mismatch", "eu size"),
     "When the query names a size, an item in another size is a Mismatch (2)."),
    ("R-ATTR-05", 2, ("head", "material", "leather", "mismatch"),
     "When the query names a material (leather, canvas, silicone, cork...), an item of another "
     "material is a Mismatch (2)."),
    ("R-ATTR-06", 2, ("head", "compatibility", "device", "case", "mismatch"),
     "A case or cover must fit the device named in the query; a case for another device model is a "
     "Mismatch (2)."),
    ("R-ATTR-07", 2, ("head", "pack", "bottle", "can", "mismatch"),
     "When the query names a pack size (12 x 330 ml cans, 1.5 l bottle), an item in another pack is a "
     "Mismatch (2)."),
    ("R-ATTR-08", 2, ("head", "thickness", "mm", "mismatch"),
     "When the query names a mat thickness in mm, a mat of another thickness is a Mismatch (2)."),
    # --- negation ----------------------------------------------------------------------------------
    ("R-NEG-01", 2, ("negation", "not", "without", "no", "non", "except", "brand"),
     "A negated brand in the query ('not X', 'without X', 'non X', 'except X') makes any item of "
     "brand X a Mismatch (2), however well it matches otherwise."),
    ("R-NEG-02", 4, ("negation", "not", "without", "brand", "excellent"),
     "For a negated-brand query, an item of the right category from any other brand that meets the "
     "remaining constraints is Excellent (4)."),
    ("R-NEG-03", 2, ("negation", "not", "free", "material", "leather", "pvc"),
     "A negated material ('not leather', 'leather-free', 'pvc-free') makes an item made of that "
     "material a Mismatch (2)."),
    ("R-NEG-04", 2, ("negation", "sugar-free", "no sugar", "zero sugar", "without sugar", "diet"),
     "'Sugar-free', 'zero sugar', 'no sugar' or 'without sugar' asks for a sugar-free drink; a regular "
     "sugared drink of the right kind is a Mismatch (2)."),
    ("R-NEG-05", None, ("negation", "scope"),
     "A negation applies only to the word right after it: '<product> not <brand>' excludes that brand, "
     "not the product itself."),
    # --- affordable alternatives ("dupe") -------------------------------------------------------
    ("R-ALT-01", 4, ("alternative", "cheap", "affordable", "dupe", "excellent"),
     "An affordable-alternative query ('cheap alternative to X', 'X dupe', 'affordable ... like X') is "
     "matched by a budget or mid-priced item of the same category from another brand: Excellent (4)."),
    ("R-ALT-02", 2, ("alternative", "cheap", "dupe", "premium", "mismatch"),
     "For an affordable-alternative query, a premium-priced item of another premium brand violates "
     "'affordable': Mismatch (2)."),
    ("R-ALT-03", 3, ("alternative", "dupe", "original", "premium brand", "related"),
     "For an affordable-alternative query, the premium brand X itself is Related (3): the right product, "
     "but the opposite of the cheaper option the shopper asked for."),
    ("R-ALT-04", None, ("alternative", "premium", "price band"),
     "Premium brands: Gucci, Prada, Louis Vuitton, Tumi, Bose, Apple, Lululemon, Manduka. Their items "
     "are in the premium price band; other brands are budget or mid-priced."),
    # --- Q&A ---------------------------------------------------------------------------------------
    ("R-QA-01", None, ("qa", "question", "what", "which", "intent"),
     "A question query ('what ... are good for ...', 'which ...') asks for the product that answers "
     "it; grade the item as if the answer had been typed as the query."),
    ("R-QA-02", 2, ("qa", "flat feet", "arch support", "running shoes"),
     "Shoes for flat feet are running shoes with arch support; running shoes lacking arch support "
     "are a Mismatch (2)."),
    ("R-QA-03", 2, ("qa", "laptop", "inch", "backpack", "fits"),
     "A backpack 'that fits an N inch laptop' needs a laptop compartment of at least N inches; a "
     "smaller compartment is a Mismatch (2), an equal or larger one fits."),
    ("R-QA-04", 2, ("qa", "flight", "plane", "noise cancelling", "headphones"),
     "Headphones for long flights or blocking airplane noise must be noise cancelling; headphones "
     "lacking noise cancelling are a Mismatch (2)."),
    ("R-QA-05", 2, ("qa", "keto", "diet", "sugar-free", "cola"),
     "A cola for a keto diet must be sugar-free; a regular cola is a Mismatch (2)."),
    ("R-QA-06", 2, ("qa", "hot yoga", "pvc", "yoga mat", "slippery"),
     "Hot yoga makes PVC mats slippery: a mat for hot yoga (or Bikram yoga) must be natural rubber, TPE "
     "or cork, and a PVC mat is a Mismatch (2)."),
    ("R-QA-07", 2, ("qa", "rain", "wet", "waterproof", "hiking boots"),
     "Boots that keep feet dry on rainy or wet hikes must be waterproof; non-waterproof boots are a "
     "Mismatch (2)."),
    # --- world knowledge --------------------------------------------------------------------------
    ("R-KNOW-01", None, ("knowledge", "marathon", "running shoes", "race"),
     "A marathon (or half marathon, 10k race) is a road running race: 'marathon shoes' or 'race "
     "trainers' are running shoes."),
    ("R-KNOW-02", None, ("knowledge", "kindle", "paperwhite", "oasis", "e-reader case", "cover"),
     "Kindle Paperwhite and Kindle Oasis are Amazon e-readers: a 'kindle cover' is an e-reader case that "
     "must fit that exact Kindle model; a Kobo case fails to fit."),
    ("R-KNOW-03", None, ("knowledge", "iphone", "galaxy", "pixel", "phone case", "bumper", "cover"),
     "A 'bumper' or 'cover' for an iPhone, Galaxy or Pixel model is a phone case that must fit that "
     "exact phone model."),
    ("R-KNOW-04", 2, ("knowledge", "swimming", "waterproof", "earbuds", "pool"),
     "Earbuds for swimming or the pool must be waterproof; earbuds lacking waterproofing are a "
     "Mismatch (2)."),
    ("R-KNOW-05", None, ("knowledge", "trekking", "alps", "hiking boots"),
     "Trekking, mountain walking and alpine hiking call for hiking boots."),
    ("R-KNOW-06", 2, ("knowledge", "diabetic", "diabetes", "sugar-free", "cola"),
     "Diabetic-friendly drinks are sugar-free; a regular sugared cola is a Mismatch (2) for 'cola for "
     "diabetics'."),
    ("R-KNOW-07", 2, ("knowledge", "macbook", "laptop size", "backpack", "inch"),
     "A MacBook Pro 16 needs a 17 inch laptop compartment and a MacBook Air 15 a 15 inch one; a backpack "
     "with a smaller compartment is a Mismatch (2)."),
    ("R-KNOW-08", None, ("knowledge", "bikram", "hot yoga", "yoga mat"),
     "Bikram yoga is hot yoga: a 'bikram mat' is a yoga mat for hot yoga."),
    ("R-KNOW-09", None, ("knowledge", "trainers", "sneakers", "synonym"),
     "'Trainers' and 'sneakers' are other words for athletic shoes; 'cover' and 'case' mean the same "
     "product for devices."),
    # --- near substitutes --------------------------------------------------------------------------
    ("R-SUB-01", 3, ("substitute", "running shoes", "trail running shoes"),
     "Road running shoes and trail running shoes substitute for each other: Related (3)."),
    ("R-SUB-02", 3, ("substitute", "running shoes", "walking shoes"),
     "Running shoes and walking shoes substitute for each other: Related (3)."),
    ("R-SUB-03", 3, ("substitute", "trail running shoes", "hiking boots"),
     "Trail running shoes and hiking boots substitute for each other on trails: Related (3)."),
    ("R-SUB-04", 3, ("substitute", "handbag", "crossbody bag"),
     "A crossbody bag for a handbag query (or the reverse) is a near substitute: Related (3)."),
    ("R-SUB-05", 3, ("substitute", "backpack", "laptop bag"),
     "A laptop bag for a backpack query (or the reverse) is a near substitute: Related (3)."),
    ("R-SUB-06", 3, ("substitute", "cola", "lemon soda", "soft drink"),
     "Another soft drink (lemon soda for cola, or the reverse) is a near substitute: Related (3)."),
    ("R-SUB-07", 3, ("substitute", "e-reader case", "tablet sleeve"),
     "A tablet sleeve for an e-reader case query (or the reverse) is a near substitute: Related (3)."),
    ("R-SUB-08", 3, ("substitute", "headphones", "earbuds"),
     "Earbuds for a headphones query (or the reverse) are a near substitute: Related (3)."),
    ("R-SUB-09", 3, ("substitute", "yoga mat", "exercise mat"),
     "An exercise mat for a yoga mat query (or the reverse) is a near substitute: Related (3)."),
)


def builtin_rules() -> list[Rule]:
    """The built-in atomic rules, in a stable order."""
    return [
        Rule(rule_id=rule_id, text=text, grade_hint=hint, tags=list(tags))
        for rule_id, hint, tags, text in _RULES
    ]


def load_rules(uri: str | None = None) -> list[Rule]:
    """Rules from a JSONL file (Rule rows), or the built-in KB when no file is given."""
    return jsonl.read_jsonl(uri, Rule) if uri else builtin_rules()


def rule_document(rule: Rule) -> str:
    """The text a retriever indexes for a rule: its statement plus its tags."""
    return f"{rule.text} [{', '.join(rule.tags)}]" if rule.tags else rule.text
