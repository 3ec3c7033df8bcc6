"""The tag protocol of the reference study: <think>, <action>, <observation>, <final_answer>."""

from __future__ import annotations

import re

_FINAL = re.compile(r"<final_answer>(.*?)(?:</final_answer>|$)", re.DOTALL | re.IGNORECASE)


def final_answer_tag(text: str) -> str | None:
    """The content of the last <final_answer> tag (a missing closing tag is tolerated)."""
    found = _FINAL.findall(text)
    return found[-1].strip() if found else None
