"""Reading labels and `entity, TYPE` lines: shared by the answer formats and the scorers."""

from __future__ import annotations

import re
from collections import Counter

ENTITY_TYPES = ("PER", "ORG", "LOC")
_ENTITY_LINE = re.compile(
    r"^\s*(?:[-*•]|\d+[.)])?\s*(?P<name>.+?)\s*[,:]\s*(?P<type>[A-Za-z]+)\s*$"
)


def normalize_label(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def match_label(text: str, choices: tuple[str, ...]) -> str | None:
    """The choice a reply names: an exact (normalized) match, else the first choice mentioned."""
    norm = normalize_label(text)
    by_norm = {normalize_label(c): c for c in choices}
    if norm in by_norm:
        return by_norm[norm]
    hits = []
    for key, choice in by_norm.items():
        found = re.search(rf"\b{re.escape(key)}\b", norm)
        if found:
            hits.append((found.start(), choice))
    return min(hits)[1] if hits else None


def entity(line: str) -> tuple[str, str] | None:
    """(normalized entity, TYPE) for an `entity, TYPE` line of a known type, else None."""
    m = _ENTITY_LINE.match(line)
    if m is None or m["type"].upper() not in ENTITY_TYPES:
        return None
    return normalize_label(m["name"]), m["type"].upper()


def entity_lines(text: str) -> list[str]:
    """The lines of `text` that are `entity, TYPE` lines, stripped."""
    return [ln.strip() for ln in text.splitlines() if entity(ln) is not None]


def parse_entities(text: str) -> Counter[tuple[str, str]]:
    """`entity, TYPE` lines as a multiset of (normalized entity, type)."""
    return Counter(e for e in map(entity, text.splitlines()) if e is not None)
