"""The knowledge_search tool: BM25 (bm25s) over local passages.

The project ships an authored financial glossary; users add their own folder of .md/.txt files.
It stands in, offline, for the reference study's encyclopedia and web search. Markdown files
are split at headings, text files at blank lines; each piece is one passage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from slmscope.tools.base import ToolError, require_str

GLOSSARY = Path(__file__).with_name("data") / "glossary.md"


def passages(path: Path) -> list[str]:
    """A file's passages: sections under headings for Markdown, paragraphs otherwise."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() in (".md", ".markdown"):
        parts = re.split(r"(?m)^#{1,6}\s+", text)
        found = []
        for part in parts:
            title, _, body = part.partition("\n")
            if body.strip():
                found.append(f"{title.strip()}: {' '.join(body.split())}")
        return found
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def collect(sources: Iterable[Path]) -> list[str]:
    """Passages from files and folders (.md, .markdown, .txt, searched recursively)."""
    found: list[str] = []
    for source in sources:
        if not source.exists():
            raise FileNotFoundError(f"knowledge source {source} does not exist")
        files = sorted(source.rglob("*")) if source.is_dir() else [source]
        for file in files:
            if file.is_file() and file.suffix.lower() in (".md", ".markdown", ".txt"):
                found.extend(passages(file))
    return found


class KnowledgeSearch:
    name = "knowledge_search"
    description = (
        "Search a financial knowledge base (definitions, formulas, concepts) and return the "
        "best matching passages."
    )
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "what to look up, e.g. 'dividend yield'"},
            "k": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
        },
        "required": ["query"],
        "additionalProperties": False,
    }

    def __init__(self, sources: Iterable[Path] = (), *, include_glossary: bool = True) -> None:
        self.sources = ([GLOSSARY] if include_glossary else []) + list(sources)
        self._corpus: list[str] | None = None
        self._index: Any = None

    def _ensure_index(self) -> None:
        if self._index is not None:
            return
        import bm25s

        corpus = collect(self.sources)
        if not corpus:
            raise ToolError("the knowledge base is empty")
        index = bm25s.BM25()
        index.index(
            bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
        )
        self._corpus, self._index = corpus, index

    def search(self, query: str, k: int = 3) -> list[tuple[str, float]]:
        """The best passages for the query with their BM25 scores (no zero-score matches)."""
        import bm25s

        self._ensure_index()
        assert self._corpus is not None
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not any(tokens.ids):
            return []
        k = max(1, min(k, len(self._corpus)))
        ids, scores = self._index.retrieve(tokens, k=k, show_progress=False)
        return [
            (self._corpus[int(i)], float(s))
            for i, s in zip(ids[0], scores[0], strict=True)
            if s > 0
        ]

    async def run(self, args: Mapping[str, Any]) -> str:
        query = require_str(args, "query", self.name)
        k = args.get("k", 3)
        if not isinstance(k, int) or isinstance(k, bool):
            raise ToolError("knowledge_search: 'k' must be a whole number")
        hits = self.search(query, k)
        if not hits:
            return f"no passage matches {query!r}"
        return "\n".join(f"[{n}] {text}" for n, (text, _) in enumerate(hits, 1))
