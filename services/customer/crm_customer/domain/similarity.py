"""Fuzzy name matching for duplicate detection (no I/O).

Names are compared after normalization: case, punctuation and legal-form words
("Ltd", "Inc.", "有限公司" ...) do not make two companies different.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz import fuzz, process

_LEGAL_FORMS = (
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "集团",
    "公司",
)
_LEGAL_WORDS = frozenset(
    [
        "ltd",
        "limited",
        "inc",
        "incorporated",
        "co",
        "company",
        "corp",
        "corporation",
        "llc",
        "plc",
        "gmbh",
        "ag",
        "sa",
        "bv",
        "srl",
        "pty",
        "the",
    ]
)
_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def name_key(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).lower()
    for form in _LEGAL_FORMS:
        text = text.replace(form, " ")
    words = _PUNCTUATION.sub(" ", text).split()
    return " ".join(w for w in words if w not in _LEGAL_WORDS)


def match_key(display_name: str, company: str = "") -> str:
    """Name plus company (for people: "Li Lei" at "Acme" differs from "Li Lei" at "Globex")."""
    key = name_key(display_name)
    return f"{key} @ {name_key(company)}" if company.strip() else key


def score(a: str, b: str) -> int:
    return round(fuzz.token_sort_ratio(a, b))


def best_matches(key: str, choices: dict[str, str], *, min_score: int, limit: int) -> list[tuple[str, int]]:
    """(choice id, score 0-100) of the choices whose key scores at least min_score, best first."""
    if not key or not choices:
        return []
    found = process.extract(key, choices, scorer=fuzz.token_sort_ratio, score_cutoff=min_score, limit=limit)
    return [(choice_id, round(value)) for _, value, choice_id in found]
