"""The math page docs/model.md is the one the repository cites: no file points outside the repository, and every
``docs/model.md#<anchor>`` names a heading of that page."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL_PAGE = ROOT / "docs" / "model.md"
#: Files whose text is checked: what git tracks with these suffixes (the working tree's version).
SUFFIXES = (".py", ".md", ".toml")
#: Pointers to documents users of the repository cannot read (built from parts: this file passes its own test).
FORBIDDEN = ("MODEL" + ".md", "../" + "shared", "/" + "work/")
CITATION = re.compile(r"docs/model\.md#([A-Za-z0-9_-]+)")


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    # Files added in the working tree but not yet committed count too, once git tracks them.
    return [ROOT / name for name in listed if name.endswith(SUFFIXES) and (ROOT / name).is_file()]


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped (hyphens and underscores kept), spaces to
    hyphens. Inline code marks and link syntax are dropped first."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def page_anchors(text: str) -> set[str]:
    """The anchors of every Markdown heading outside fenced code, with GitHub's -1, -2 suffixes for repeats."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not match:
            continue
        anchor = github_anchor(match.group(1))
        count = seen.get(anchor, 0)
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
        seen[anchor] = count + 1
    return anchors


def test_github_anchor_rule():
    assert github_anchor("Worlds, policies and values") == "worlds-policies-and-values"
    assert github_anchor("Weighted i.i.d. draws") == "weighted-iid-draws"
    assert github_anchor("The `monte_carlo` estimator") == "the-monte_carlo-estimator"
    assert page_anchors("# A\n## B\n```\n# not a heading\n```\n## B\n") == {"a", "b", "b-1"}


def test_model_page_exists_with_the_core_sections():
    anchors = page_anchors(MODEL_PAGE.read_text())
    assert {"the-bayes-net", "ties", "infinite-g", "estimators-of-g", "what-fit-chooses"} <= anchors


def test_no_file_points_outside_the_repository():
    offenders = [
        f"{path.relative_to(ROOT)}: {pattern}"
        for path in tracked_files()
        for pattern in FORBIDDEN
        if pattern in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert not offenders, "cite docs/model.md instead of documents outside the repository:\n" + "\n".join(
        offenders
    )


def test_every_model_page_anchor_cited_exists():
    anchors = page_anchors(MODEL_PAGE.read_text())
    cited = {
        (str(path.relative_to(ROOT)), anchor)
        for path in tracked_files()
        for anchor in CITATION.findall(path.read_text(encoding="utf-8", errors="replace"))
    }
    assert cited, "nothing cites docs/model.md#..."
    missing = sorted(f"{where}: #{anchor}" for where, anchor in cited if anchor not in anchors)
    assert not missing, "anchors missing from docs/model.md:\n" + "\n".join(missing)


def test_links_within_the_model_page_exist():
    text = MODEL_PAGE.read_text()
    missing = sorted(set(re.findall(r"\]\(#([^)]+)\)", text)) - page_anchors(text))
    assert not missing, f"docs/model.md links to headings it does not have: {missing}"
