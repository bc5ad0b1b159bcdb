"""Text helpers: repeat-matter detection and masking/validation of personal identifiers."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from difflib import SequenceMatcher

REPEAT_SIMILARITY = 0.6
"""Two matters at or above this similarity (0..1) are flagged as possibly the same matter.

The score is the larger of difflib's ratio (order-sensitive) and the Sørensen–Dice
coefficient of character bigrams (robust to reordered clauses), both on normalized text.
0.6 flags rewordings of one complaint while keeping distinct complaints of the same
kind (e.g. two different unpaid-wage employers) mostly apart; it only raises a flag for a
person to confirm, it never merges cases.
"""


def normalize_matter(text: str) -> str:
    """Normalize a matter description for comparison: NFKC, lowercase, no spaces/punctuation."""
    folded = unicodedata.normalize("NFKC", text).lower()
    # Keep letters, digits and CJK ideographs; drop punctuation (P*), symbols (S*),
    # separators/whitespace (Z*) and control characters (C*).
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LMN")


def _bigrams(text: str) -> list[str]:
    """Character bigrams of ``text`` (the text itself if shorter than 2)."""
    if len(text) < 2:
        return [text] if text else []
    return [text[i : i + 2] for i in range(len(text) - 1)]


def _dice(a: str, b: str) -> float:
    """Sørensen–Dice coefficient of the character-bigram multisets of a and b."""
    grams_a, grams_b = _bigrams(a), _bigrams(b)
    if not grams_a or not grams_b:
        return 0.0
    remaining = list(grams_b)
    common = 0
    for gram in grams_a:
        if gram in remaining:
            remaining.remove(gram)
            common += 1
    return 2 * common / (len(grams_a) + len(grams_b))


def matter_similarity(a: str, b: str) -> float:
    """Return how alike two matter descriptions are, 0..1 (empty text matches nothing)."""
    na, nb = normalize_matter(a), normalize_matter(b)
    if not na or not nb:
        return 0.0
    ratio = SequenceMatcher(None, na, nb, autojunk=False).ratio()
    return max(ratio, _dice(na, nb))


def is_repeat_matter(a: str, b: str, threshold: float = REPEAT_SIMILARITY) -> bool:
    """Return True if two matters look like the same matter (similarity ≥ threshold)."""
    return matter_similarity(a, b) >= threshold


def mask_id_number(value: str) -> str:
    """Mask a resident ID number, keeping the first 4 and last 4 characters."""
    s = value.strip()
    if len(s) <= 8:
        return "*" * len(s)
    return s[:4] + "*" * (len(s) - 8) + s[-4:]


_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?[2-9]\d{6,7}(?:-\d{1,6})?")
_MOBILE_PREFIX = re.compile(r"^(?:\+?86)")


def _compact_phone(value: str) -> str:
    """Strip spaces and a +86/86 country prefix (kept only for mobile numbers)."""
    s = re.sub(r"[\s()（）]", "", unicodedata.normalize("NFKC", value))
    if _MOBILE_PREFIX.match(s):
        rest = _MOBILE_PREFIX.sub("", s, count=1).lstrip("-")
        if _MOBILE.fullmatch(rest):
            return rest
    return s


def mask_phone(value: str) -> str:
    """Mask a phone number: mobile as 138****5678, others keeping only the last 4 digits."""
    s = _compact_phone(value)
    if _MOBILE.fullmatch(s):
        return s[:3] + "****" + s[-4:]
    if len(s) <= 4:
        return "*" * len(s)
    head = s.split("-", 1)[0] + "-" if "-" in s[:-4] else ""
    return head + "*" * (len(s) - len(head) - 4) + s[-4:]


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_FORMAT = re.compile(r"\d{17}[\dX]")


def id_check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for the first 17 digits (GB 11643)."""
    total = sum(int(ch) * w for ch, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def valid_id_number(value: str) -> bool:
    """Return True for an 18-character PRC resident ID with a valid birth date and checksum."""
    s = value.strip().upper()
    if not _ID_FORMAT.fullmatch(s):
        return False
    try:
        born = date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    if born.year < 1900:
        return False
    return id_check_character(s[:17]) == s[17]


def valid_phone(value: str) -> bool:
    """Return True for a mainland mobile (1[3-9] + 9 digits) or a landline with area code."""
    s = _compact_phone(value)
    return bool(_MOBILE.fullmatch(s) or _LANDLINE.fullmatch(s))
