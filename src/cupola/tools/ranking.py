"""Text extraction, chunking and BM25 ranking for file search: local, offline, deterministic.

A file becomes text (:func:`extract_text`), the text becomes overlapping windows of words
(:func:`chunk_text`), and a query ranks the chunks of a vector store with Okapi BM25
(:class:`BM25`). Scores are normalized to 0..1 by the best score the query could reach, so a
``score_threshold`` means the same thing whatever the store holds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath

WORDS_PER_TOKEN = 0.75
"""Chunk sizes are given in tokens (as OpenAI's are); a token is counted as 0.75 words."""

TEXT_EXTENSIONS = frozenset(
    {".txt", ".md", ".markdown", ".rst", ".json", ".jsonl", ".csv", ".tsv", ".py", ".html",
     ".htm", ".xml", ".yaml", ".yml", ".toml", ".ini", ".log", ".js", ".ts", ".java", ".c",
     ".h", ".cpp", ".cs", ".go", ".rb", ".rs", ".php", ".sh", ".sql", ".css", ".tex"}
)  # fmt: skip
"""Extensions known to be text (any other UTF-8 file is indexed too)."""

BINARY_EXTENSIONS = frozenset(
    {".pdf", ".doc", ".docx", ".ppt", ".pptx", ".xls", ".xlsx", ".odt", ".png", ".jpg",
     ".jpeg", ".gif", ".webp", ".bmp", ".zip", ".gz", ".tar", ".7z", ".exe", ".bin", ".mp3",
     ".mp4", ".wav"}
)  # fmt: skip
"""Formats that are never indexed as text, even when their bytes happen to decode."""


class UnsupportedFile(ValueError):
    """A file that cannot be indexed; ``code`` is OpenAI's ``last_error.code``."""

    def __init__(self, message: str, code: str = "unsupported_file") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


_SPACE = re.compile(r"\s+")


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
         "footer", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "title", "hr"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(_SPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    """The visible text of an HTML document (scripts and styles dropped), one block a line."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


def extract_text(filename: str, content: bytes) -> str:
    """The text to index from a file; raises :class:`UnsupportedFile` when it is not text."""
    suffix = PurePosixPath(filename.lower()).suffix
    supported = "UTF-8 text such as .txt, .md, .json, .csv, .py or .html"
    if suffix in BINARY_EXTENSIONS or content.startswith(b"%PDF-"):
        raise UnsupportedFile(
            f"file {filename!r} is not a text file: file search indexes {supported}; "
            "convert it to text and upload that"
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnsupportedFile(
            f"file {filename!r} is not valid UTF-8: file search indexes {supported}"
        ) from None
    if "\x00" in text:
        raise UnsupportedFile(f"file {filename!r} is binary: file search indexes {supported}")
    if suffix in (".html", ".htm") or (
        not suffix and text.lstrip()[:15].lower() == "<!doctype html"
    ):
        text = html_to_text(text)
    if not text.strip():
        raise UnsupportedFile(f"file {filename!r} contains no text to index", "invalid_file")
    return text


@dataclass(frozen=True, slots=True)
class ChunkingStrategy:
    """OpenAI's static chunking strategy: windows of ``max_chunk_size_tokens`` overlapping
    by ``chunk_overlap_tokens`` (``auto`` is 800 and 400)."""

    max_chunk_size_tokens: int = 800
    chunk_overlap_tokens: int = 400

    def __post_init__(self) -> None:
        if not 100 <= self.max_chunk_size_tokens <= 4096:
            raise ValueError("max_chunk_size_tokens must be between 100 and 4096")
        if not 0 <= self.chunk_overlap_tokens <= self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must be between 0 and max_chunk_size_tokens/2")

    def wire(self) -> dict[str, object]:
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_chunk_size_tokens,
                "chunk_overlap_tokens": self.chunk_overlap_tokens,
            },
        }


_WORD_SPAN = re.compile(r"\S+")


def chunk_text(text: str, strategy: ChunkingStrategy | None = None) -> list[str]:
    """Overlapping windows of whitespace-separated words, each a slice of the original text
    (line breaks kept). Every word is in at least one chunk; short texts are one chunk."""
    strategy = strategy or ChunkingStrategy()
    size = max(1, int(strategy.max_chunk_size_tokens * WORDS_PER_TOKEN))
    overlap = min(size - 1, int(strategy.chunk_overlap_tokens * WORDS_PER_TOKEN))
    spans = [m.span() for m in _WORD_SPAN.finditer(text)]
    chunks: list[str] = []
    start = 0
    while start < len(spans):
        end = min(start + size, len(spans))
        chunks.append(text[spans[start][0] : spans[end - 1][1]])
        if end == len(spans):
            break
        start = end - overlap
    return chunks


_TOKEN = re.compile(r"\w+")
STOPWORDS = frozenset(
    """a an and are as at be but by for from has have he her his how i if in into is it its
    me my no not of on or our she so than that the their them then there these they this to
    was we were what when where which who whom why will with you your do does did can could
    would should about""".split()
)
"""Dropped from queries (unless nothing else is left), so they never outrank content words."""


def stem(word: str) -> str:
    """Harman's S-stemmer: plural ``-ies``/``-es``/``-s`` to the singular, nothing more."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens (letters, digits, ``_``), plurals folded."""
    return [stem(w) for w in _TOKEN.findall(text.lower())]


def query_terms(query: str) -> list[str]:
    """A query's distinct terms, stopwords dropped unless the query is nothing but."""
    words = _TOKEN.findall(query.lower())
    content = [w for w in words if w not in STOPWORDS] or words
    return list(dict.fromkeys(stem(w) for w in content))


def surface_forms(term: str) -> tuple[str, ...]:
    """The words :func:`stem` maps to ``term`` (the S-stemmer only strips an ``s`` or turns
    ``ies`` into ``y``, so there are at most three)."""
    candidates = [term, term + "s"]
    if term.endswith("y"):
        candidates.append(term[:-1] + "ies")
    return tuple(w for w in candidates if stem(w) == term)


class BM25:
    """Okapi BM25 over a fixed list of documents (``k1`` = 1.2, ``b`` = 0.75).

    Documents are counted as raw lowercase words (a C-speed ``Counter``); a query term
    looks up each word that stems to it, which gives the same counts as stemming every
    word of every document, at a fraction of the cost."""

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._words = [Counter(_TOKEN.findall(doc.lower())) for doc in documents]
        self._len = [sum(words.values()) for words in self._words]
        self._avg = (sum(self._len) / len(self._len)) if self._len else 0.0

    def __len__(self) -> int:
        return len(self._words)

    def term_frequencies(self, term: str) -> list[int]:
        """How often each document holds ``term`` (a stemmed token)."""
        forms = surface_forms(term)
        return [sum(words.get(w, 0) for w in forms) for words in self._words]

    def idf(self, df: int) -> float:
        n = len(self._words)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> list[float]:
        """Each document's score for ``query``, normalized to 0..1: the raw BM25 score over
        the most any document could score (every term, infinitely often)."""
        terms = query_terms(query)
        out = [0.0] * len(self._words)
        if not terms or not self._words:
            return out
        avg = self._avg or 1.0
        norms = [self.k1 * (1 - self.b + self.b * length / avg) for length in self._len]
        ceiling = 0.0
        for term in terms:
            tfs = self.term_frequencies(term)
            weight = self.idf(sum(1 for f in tfs if f))
            ceiling += weight * (self.k1 + 1)
            for i, f in enumerate(tfs):
                if f:
                    out[i] += weight * f * (self.k1 + 1) / (f + norms[i])
        return [score / ceiling for score in out] if ceiling > 0 else out


def rank(
    documents: Sequence[str],
    queries: Sequence[str],
    *,
    limit: int = 10,
    score_threshold: float = 0.0,
) -> list[tuple[int, float]]:
    """The best ``limit`` documents for any of ``queries`` as (index, score), best first.
    A document's score is its best over the queries; documents matching no query term are
    left out; ties keep document order."""
    index = BM25(documents)
    best = [0.0] * len(index)
    for query in queries:
        for i, score in enumerate(index.scores(query)):
            if score > best[i]:
                best[i] = score
    hits = [(i, s) for i, s in enumerate(best) if s > 0 and s >= score_threshold]
    hits.sort(key=lambda hit: (-hit[1], hit[0]))
    return [(i, round(s, 6)) for i, s in hits[:limit]]
