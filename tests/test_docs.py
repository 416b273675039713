"""The docs name files that exist: every repository path written in README.md and the weights
READMEs (`vcm/...`, `configs/...`, ...; brace lists and globs expanded) is in the checkout."""

import glob
import itertools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP = ("vcm", "configs", "pipelines", "tests", "benchmarks", "examples", "scripts", ".ci")
PATH = re.compile(r"`((?:%s)/[^`\s]*)`" % "|".join(re.escape(t) for t in TOP))
IGNORED = ("runs/",)  # written by runs, not in a checkout


def docs() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "vcm" / "weights").glob("*/README.md"))]


def expand(path: str) -> list[str]:
    """``q{1..4}.pth`` -> q1..q4, ``make_{a,b}.py`` -> both; other text is kept."""
    parts = re.split(r"(\{[^}]*\})", path)
    options = []
    for part in parts:
        if m := re.fullmatch(r"\{(\d+)\.\.(\d+)\}", part):
            options.append([str(i) for i in range(int(m[1]), int(m[2]) + 1)])
        elif part.startswith("{") and part.endswith("}"):
            options.append(part[1:-1].split(","))
        else:
            options.append([part])
    return ["".join(p) for p in itertools.product(*options)]


def referenced(doc: Path) -> list[str]:
    paths = []
    for raw in PATH.findall(doc.read_text()):
        raw = raw.split(":")[0].rstrip(".,;)")  # module:attr, trailing punctuation
        if raw.endswith("/") or "<" in raw or any(raw.startswith(i) for i in IGNORED):
            raw = raw.rstrip("/")
        if "<" not in raw:
            paths.extend(expand(raw))
    return paths


@pytest.mark.parametrize("doc", docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_the_docs_name_exists(doc: Path) -> None:
    missing = [p for p in referenced(doc) if not glob.glob(str(REPO / p))]
    assert referenced(doc), f"{doc} names no repository path: the pattern is broken"
    assert not missing, f"{doc.relative_to(REPO)} names paths that do not exist: {missing}"


def test_expand_and_the_pattern_find_what_they_should() -> None:
    assert expand("vcm/weights/emic-tiny/q{1..3}.pth") == [f"vcm/weights/emic-tiny/q{i}.pth" for i in (1, 2, 3)]
    assert expand("tests/fixtures/official/make_{a,b}.py") == ["tests/fixtures/official/make_a.py",
                                                              "tests/fixtures/official/make_b.py"]
    assert PATH.findall("see `vcm/masks/bitcoder.py` and `runs/x`") == ["vcm/masks/bitcoder.py"]
