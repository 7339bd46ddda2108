"""The user's guide builds clean (`mkdocs build --strict`) and cites no issue numbers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _strip_code_and_links(text):
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)  # fenced blocks
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    return re.sub(r"\]\([^)]*\)", "]", text)  # link targets (anchors such as #fuse)


ISSUE_REF = re.compile(r"(?<![\w&])#\d+\b|\bissues?\s+#?\d+|\bPR\s*#?\d+", re.I)


def test_docs_cite_no_issue_numbers():
    hits = []
    for page in sorted(DOCS.rglob("*.md")):
        for line in _strip_code_and_links(page.read_text(encoding="utf-8")).splitlines():
            if ISSUE_REF.search(line):
                hits.append(f"{page.relative_to(ROOT)}: {line.strip()}")
    assert not hits, "issue references in the docs:\n" + "\n".join(hits)


def test_issue_pattern_ignores_code_and_anchors():
    text = "see [fuse](#fuse) and `git log #12`\n```text\nissue 3\n```\nplain #40 here"
    found = [ln for ln in _strip_code_and_links(text).splitlines() if ISSUE_REF.search(ln)]
    assert found == ["plain #40 here"]


def test_site_builds_strict(tmp_path):
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python", "material"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2.0, not a warning
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for page in (
        "index.html",
        "getting-started/index.html",
        "howto/fuse-nmc/index.html",
        "howto/tem-frame/index.html",
        "methods/superres/index.html",
        "methods/indi/index.html",
        "methods/hrtem/index.html",
        "metrics/index.html",
        "gui/index.html",
        "reliability/index.html",
    ):
        assert (site / page).is_file(), page
    api = {
        "io": "read_volume",
        "data": "particle_electrode",
        "metrics": "volume_fraction",
        "nn": "tiled_apply",
        "report": "Report",
        "fuse": "voxelwise_loss",
        "restore": "indi_sample",
        "tem": "match_spots",
        "segment": "predict_proba",
    }
    for package, name in api.items():
        html = (site / "api" / package / "index.html").read_text(encoding="utf-8")
        assert name in html, f"api/{package} does not document {name}"
    # the method pages render their equations for MathJax
    assert 'class="arithmatex"' in (site / "methods" / "indi" / "index.html").read_text(encoding="utf-8")
