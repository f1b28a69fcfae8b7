"""The documentation: the site builds with --strict, its picture is current, the README keeps its promises."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: every public module, and its reference page
#: reference page -> the module it documents
PUBLIC_MODULES = {
    "streams": "plan.stream", "transforms": "plan.transforms", "execution": "execution", "memo": "memo",
    "strategies": "testing.strategies", "testing": "testing", "errors": "errors", "torch": "integrations.torch", "demo": "demo",
}


def load_docs_module(name):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    streams = (site / "reference" / "streams" / "index.html").read_text()
    assert 'id="combinators.plan.mixes.mix"' in streams  # generated from the docstrings
    assert "&gt;&gt;&gt;" in streams and "<blockquote" not in streams  # doctests render as code
    assert (site / "guide" / "working-set.svg").exists()
    for page in (site / "reference").glob("*/index.html"):  # each module's name once: title, not title and heading
        headings = [re.sub(r"<[^>]+>|\s", "", h) for h in re.findall(r"<h[1-6][^>]*>(.*?)</h[1-6]>", page.read_text(), re.S)]
        repeated = {h for h in headings if h.startswith("combinators") and headings.count(h) > 1}
        assert not repeated, f"{page.parent.name}: {repeated}"
    assert "github.com/combinators" not in (site / "index.html").read_text()  # no link to a repository that does not exist
    memo = (site / "reference" / "memo" / "index.html").read_text()
    for internal in ("value_encoder", "bind_memory", "finisher"):  # the keymaps' hooks for memoize stay out
        assert f"Keymap.{internal}" not in memo, internal
    toc = [re.sub(r"<[^>]+>|\s", "", h).lower() for h in re.findall(r"<h[23][^>]*>(.*?)</h[23]>", memo, re.S)]
    assert len(toc) == len(set(toc)), sorted(h for h in toc if toc.count(h) > 1)  # sections and names: once each
    for page in site.rglob("*.html"):
        assert "<th></th>" not in page.read_text(), page  # every table column has a header
    assert "white-space: pre-wrap" in (site / "stylesheets" / "extra.css").read_text()  # long code lines wrap
    assert "stylesheets/extra.css" in (site / "guide" / "parallel" / "index.html").read_text()


def test_links_to_guide_pages_are_named_as_the_sidebar_names_them():
    nav = dict(re.findall(r"^\s+- \"?([^:\n]+?)\"?: (guide/[a-z-]+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.M))
    titles = {page: title for title, page in nav.items()}
    links = re.findall(r"\[([^\]]+)\]\((guide/[a-z-]+\.md)\)", (ROOT / "docs" / "index.md").read_text())
    assert links and all(text == titles[page] for text, page in links), [l for l in links if l[0] != titles[l[1]]]


def test_every_guide_page_is_under_guide_and_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert [p for p in pages if not p.startswith(("guide/", "reference/"))] == ["index.md"]
    assert all(f" {p}\n" in nav for p in pages), [p for p in pages if f" {p}\n" not in nav]
    assert "repo_url" not in nav


def test_one_executor_table():
    guide = [p.read_text() for p in (ROOT / "docs" / "guide").glob("*.md")]
    assert sum("| `\"inprocess\"` (default) |" in text for text in guide) == 1


def test_every_public_module_has_a_reference_page():
    for name, module in PUBLIC_MODULES.items():
        page = (ROOT / "docs" / "reference" / f"{name}.md").read_text()
        if f"::: combinators.{module}" in page:
            continue
        assert "PLACEHOLDER" in page, f"reference/{name}.md neither documents combinators.{name} nor is a placeholder"
        if name in ("strategies", "testing"):  # placeholders wait for the toolkit branch
            assert importlib.util.find_spec(f"combinators.{name}") is None, (
                f"combinators.{name} exists now: put '::: combinators.{name}' in docs/reference/{name}.md"
            )


def test_the_working_set_picture_is_what_its_script_draws():
    drawing = load_docs_module("working_set")
    assert drawing.OUTPUT.read_text() == drawing.render()


def test_the_working_set_caption_says_what_the_picture_shows():
    # the caption said "light stream 0 happens not to appear" and "stream 4 holds two around item 5" under a
    # picture with stream 0 twice and no stream 4
    drawing = load_docs_module("working_set")
    facts = drawing.caption_facts(drawing.activations(drawing.sample()))
    guide = " ".join((ROOT / "docs" / "guide" / "sampling.md").read_text().split())
    assert f"n_active={drawing.N_ACTIVE}, rate={drawing.RATE})` with seed {drawing.SEED}." in guide
    assert facts["absent"] == [0] and "here light stream 0 happens not to appear at all" in guide, facts
    stream, item = facts["double"]
    assert f"(stream {stream} holds two from item {item})" in guide, facts


def test_the_working_set_picture_never_needs_more_than_n_active_slots():
    drawing = load_docs_module("working_set")
    spans = drawing.activations(drawing.sample())
    lanes = drawing.slots(spans)
    assert max(lanes) + 1 <= drawing.N_ACTIVE
    for lane in set(lanes):  # activations sharing a slot do not overlap
        mine = [positions for (_, positions), slot in zip(spans, lanes) if slot == lane]
        assert all(a[-1] < b[0] for a, b in zip(mine, mine[1:]))
    assert sum(len(positions) for _, positions in spans) == drawing.N_ITEMS


def test_doctest_examples_are_fenced_for_markdown():
    fences = load_docs_module("doctest_fences")
    text = "Summary.\n\n>>> x = 1\n>>> x\n1\nmore output\n\nAfter.\n    >>> indented\n"
    assert fences.fence_examples(text).splitlines() == [
        "Summary.", "", "```pycon", ">>> x = 1", ">>> x", "1", "more output", "```", "", "After.",
        "```pycon", "    >>> indented", "```",
    ]


def quick_start():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n+```[a-z]*\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md needs a fenced block under '## Quick start'"
    return block.group(1).splitlines()


def test_the_readme_quick_start_is_two_commands_demo_then_tests():
    demo, tests = quick_start()
    assert "pip install" in demo and demo.rstrip().endswith("combinators demo")
    assert "pip install" in tests and tests.rstrip().endswith("pytest")
    assert ".[demo]" in demo


def test_the_test_command_installs_what_the_tests_need():
    _, tests = quick_start()
    extras = re.search(r'\.\[([a-z,-]+)\]', tests).group(1).split(",")
    assert {"dev", "torch", "ray", "ray-train"} <= set(extras), extras


def readme_blocks():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_each_readme_example_runs_on_its_own(index, tmp_path):
    """Each python block of the README, alone, in a fresh interpreter and an empty folder, without a warning
    (the memoize example warned that its function lived in ``__main__``)."""
    block = readme_blocks()[index]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", block], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, f"README block {index}:\n{block}\n{done.stderr[-3000:]}"


def test_the_readme_has_its_examples():
    blocks = readme_blocks()
    assert len(blocks) >= 5 and all("import combinators as c" in b or "from combinators import" in b for b in blocks)
    assert any("c.Processes(" in b for b in blocks) and "combinators.execution." not in "".join(blocks)
