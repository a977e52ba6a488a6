"""Every relative link and `#anchor` in README.md and docs/*.md resolves, with GitHub's heading-anchor rules, and
every docs page is one click from the README."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from conftest import PROJECT, doc_pages

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", flags=re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", flags=re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", flags=re.M)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", flags=re.M)
HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", flags=re.I)


def prose(text: str) -> str:
    """The page without its fenced code blocks (a `# comment` there is no heading, a `[x](y)` no link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (github-slugger): the rendered text (link and image text kept, code spans'
    backticks and HTML tags dropped), lower-cased, every character that is not a letter, digit, mark, space,
    `-` or `_` removed, each space a `-` (runs are not collapsed)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = (c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors a page has: one per heading, a repeated one suffixed -1, -2, … as GitHub does, and HTML ids."""
    seen: dict[str, int] = {}
    found = set(HTML_ID.findall(text))
    for heading in HEADING.findall(prose(text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(text: str) -> list[str]:
    """A page's link targets (inline, images and reference definitions), outside code blocks and code spans."""
    body = CODE_SPAN.sub("", prose(text))
    return LINK.findall(body) + REFERENCE.findall(body)


def broken_links(pages: dict[str, str], root: Path) -> list[str]:
    """`page: target (why)` for each relative link of `pages` (path relative to `root` → text) that does not
    resolve: a file or folder that does not exist, or an anchor that no heading of the target page makes."""
    broken = []
    for page, text in pages.items():
        for target in links(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # https:, mailto:, …: not checked here
                continue
            path, _, anchor = target.partition("#")
            file = (root / page).parent / path if path else root / page
            if not file.exists():
                broken.append(f"{page}: {target} (no such file)")
                continue
            if anchor:
                if file.suffix != ".md" or file.is_dir():
                    broken.append(f"{page}: {target} (an anchor into a file that is no Markdown page)")
                    continue
                relative = file.resolve().relative_to(root.resolve()).as_posix()
                target_text = pages.get(relative) or file.read_text()
                if anchor not in anchors(target_text):
                    broken.append(f"{page}: {target} (no heading of {relative} has the anchor #{anchor})")
    return broken


def test_every_relative_link_and_anchor_resolves():
    pages = doc_pages()
    assert len([p for p in pages if p.startswith("docs/")]) >= 5
    assert broken_links(pages, PROJECT) == []


def test_every_docs_page_is_one_click_from_the_readme():
    pages = doc_pages()
    linked = {target.partition("#")[0] for target in links(pages["README.md"])}
    assert sorted(p for p in pages if p.startswith("docs/") and p not in linked) == []


def test_slugs_follow_githubs_rules():
    assert slug("Ship the model: ONNX, TFLite, SavedModel") == "ship-the-model-onnx-tflite-savedmodel"
    assert slug("Benchmark sets (Set5, Set14, …)") == "benchmark-sets-set5-set14-"
    assert slug("The paper's models") == "the-papers-models"
    assert slug("SRCNN ×2, reproducible end to end with DVC") == "srcnn-2-reproducible-end-to-end-with-dvc"
    assert slug("`srcnn upscale` and *its* [options](x.md)") == "srcnn-upscale-and-its-options"
    assert slug("Full DIV2K") == "full-div2k" and slug("a  b_c-d") == "a--b_c-d" and slug("Café") == "café"
    assert anchors("# Results\n## Results\n```sh\n# not a heading\n```\n### Results\n") == {
        "results",
        "results-1",
        "results-2",
    }


def test_broken_links_and_anchors_are_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.png").write_bytes(b"")
    pages = {
        "README.md": "# Top\n[ok](docs/b.md#two) [ok](#top) ![ok](docs/a.png) [web](https://example.org/#x)\n"
        "[gone](docs/c.md) [bad](docs/b.md#three) [bad](#nowhere) `[code](docs/c.md)`\n"
        "```\n[in a block](docs/c.md)\n```\n[ref]: docs/b.md#one\n",
        "docs/b.md": "# One\n## Two\n[back](../README.md#top) [bad](../README.md#one) [img](a.png#x)\n",
    }
    for page, text in pages.items():
        (tmp_path / page).write_text(text)
    assert broken_links(pages, tmp_path) == [
        "README.md: docs/c.md (no such file)",
        "README.md: docs/b.md#three (no heading of docs/b.md has the anchor #three)",
        "README.md: #nowhere (no heading of README.md has the anchor #nowhere)",
        "docs/b.md: ../README.md#one (no heading of README.md has the anchor #one)",
        "docs/b.md: a.png#x (an anchor into a file that is no Markdown page)",
    ]
