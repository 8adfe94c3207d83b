"""Text extraction, chunking and BM25: local, deterministic, scores in 0..1."""

from __future__ import annotations

from collections import Counter

import pytest

from cupola.tools.ranking import (
    BM25,
    ChunkingStrategy,
    UnsupportedFile,
    chunk_text,
    extract_text,
    query_terms,
    rank,
    stem,
    surface_forms,
    tokenize,
)

DOCS = [
    "Refunds are issued within 14 days of a cancelled booking. Refund requests go to billing.",
    "The hotel offers breakfast from 7 to 10 and a rooftop pool open until midnight.",
    "Flights to Tokyo leave daily; baggage allowance is two checked bags per passenger.",
    "Our office is closed on public holidays. Contact support by email at any time.",
]


def test_tokenize_lowercases_and_folds_plurals() -> None:
    assert tokenize("Refunds, POLICIES and the Bus!") == ["refund", "policy", "and", "the", "bus"]
    assert [stem(w) for w in ("classes", "glass", "status", "cars", "go")] == [
        "classe",
        "glass",
        "status",
        "car",
        "go",
    ]


def test_bm25_counts_every_word_that_stems_to_a_term() -> None:
    docs = ["policies and a policy", "bus buses classes", "nothing here"]
    index = BM25(docs)
    for term in ("policy", "bus", "buse", "classe", "nothing"):
        expected = [Counter(tokenize(d))[term] for d in docs]
        assert index.term_frequencies(term) == expected, term
    assert surface_forms("policy") == ("policy", "policys", "policies")


def test_query_terms_drop_stopwords_unless_nothing_is_left() -> None:
    assert query_terms("What is the refund policy?") == ["refund", "policy"]
    assert query_terms("the who") == ["the", "who"]


def test_bm25_puts_the_matching_document_first() -> None:
    hits = rank(DOCS, ["how do I get a refund"], limit=3)
    assert hits[0][0] == 0
    assert all(0 < score <= 1 for _, score in hits)
    assert [i for i, _ in rank(DOCS, ["baggage on flights to Tokyo"])][:1] == [2]


def test_documents_without_a_query_term_are_left_out() -> None:
    assert rank(DOCS, ["zeppelin"]) == []
    assert [i for i, _ in rank(DOCS, ["pool"])] == [1]


def test_scores_are_normalized_and_grow_with_term_frequency() -> None:
    index = BM25(["alpha beta", "alpha alpha alpha beta", "gamma delta"])
    once, thrice, none = index.scores("alpha")
    assert 0 < once < thrice < 1 and none == 0
    assert index.scores("") == [0.0, 0.0, 0.0]


def test_several_queries_take_each_documents_best_score() -> None:
    both = dict(rank(DOCS, ["breakfast", "baggage"]))
    assert set(both) == {1, 2}
    assert both[1] == dict(rank(DOCS, ["breakfast"]))[1]


def test_ranking_is_deterministic_and_ties_keep_document_order() -> None:
    docs = ["same words here", "other text", "same words here"]
    assert rank(docs, ["same words"]) == rank(docs, ["same words"])
    assert [i for i, _ in rank(docs, ["same words"])] == [0, 2]


def test_limit_and_score_threshold() -> None:
    assert len(rank(DOCS, ["refund hotel flights office"], limit=2)) == 2
    strong = rank(DOCS, ["refund"], score_threshold=0.99)
    assert strong == []


def test_short_text_is_one_chunk_with_its_line_breaks() -> None:
    text = "Line one.\n\nLine two has more words."
    assert chunk_text(text) == [text]
    assert chunk_text("   ") == []


def test_long_text_is_split_into_overlapping_windows() -> None:
    words = [f"w{i}" for i in range(1000)]
    strategy = ChunkingStrategy(max_chunk_size_tokens=100, chunk_overlap_tokens=40)
    chunks = chunk_text(" ".join(words), strategy)
    sizes = [len(c.split()) for c in chunks]
    assert sizes[:-1] == [75] * (len(chunks) - 1) and sizes[-1] <= 75
    first, second = chunks[0].split(), chunks[1].split()
    assert first[-30:] == second[:30]  # 40 tokens of overlap are 30 words
    covered = {w for c in chunks for w in c.split()}
    assert covered == set(words)
    assert chunks[-1].split()[-1] == "w999"


def test_default_strategy_is_800_tokens_with_400_overlap() -> None:
    assert ChunkingStrategy().wire() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }
    chunks = chunk_text(" ".join(["word"] * 1500))
    assert [len(c.split()) for c in chunks] == [600, 600, 600, 600]


@pytest.mark.parametrize(("size", "overlap"), [(99, 0), (4097, 0), (200, 101), (200, -1)])
def test_chunking_strategy_bounds(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        ChunkingStrategy(size, overlap)


def test_extract_text_from_text_formats() -> None:
    assert extract_text("notes.md", b"# Title\nbody") == "# Title\nbody"
    assert extract_text("data.json", b'{"a": 1}') == '{"a": 1}'
    assert extract_text("noext", "\ufeffcaf\u00e9".encode()) == "caf\u00e9"


def test_extract_text_strips_html() -> None:
    html = (
        b"<html><head><title>T</title><style>p{color:red}</style></head><body>"
        b"<h1>Check-in</h1><p>From <b>3 pm</b>\n  &amp; later.</p><ul><li>one</li><li>two</li></ul>"
        b"<script>var secret = 1;</script></body></html>"
    )
    text = extract_text("page.html", html)
    assert text == "Check-in\nFrom 3 pm & later.\none\ntwo"


@pytest.mark.parametrize(
    ("filename", "content", "code"),
    [
        ("scan.pdf", b"%PDF-1.4 plain ascii", "unsupported_file"),
        ("photo.png", b"\x89PNG\r\n\x1a\n", "unsupported_file"),
        ("blob.dat", b"\xff\xfe\x00bad", "unsupported_file"),
        ("nul.txt", b"text\x00more", "unsupported_file"),
        ("empty.txt", b"  \n ", "invalid_file"),
    ],
)
def test_extract_text_refuses_what_is_not_text(filename: str, content: bytes, code: str) -> None:
    with pytest.raises(UnsupportedFile) as info:
        extract_text(filename, content)
    assert info.value.code == code and filename in info.value.message
