"""pyproject.toml: what an install reads."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression():
    assert PYPROJECT["project"]["license"] == "MIT"  # PEP 639; the table form is deprecated
    requires = PYPROJECT["build-system"]["requires"]
    assert any(r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77 for r in requires)


def test_plot_is_an_extra_and_the_tests_install_it():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(r.startswith("matplotlib") for r in extras["plot"])
    assert set(extras["plot"]) <= set(extras["dev"])


def test_the_version_is_written_in_one_place_and_the_changelog_releases_it():
    import re

    import combinators

    root = Path(__file__).parents[1]
    assert "version" not in PYPROJECT["project"] and PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "combinators.__version__"}
    assert combinators.__version__ == "0.2.0"
    changelog = (root / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert releases[0] == combinators.__version__ and "## [Unreleased]" in changelog  # Keep a Changelog
    assert "### Changed" in changelog.split("## [0.1.0]")[0]


def test_the_docs_name_released_versions_only():
    import re

    root = Path(__file__).parents[1]
    paths = [*root.joinpath("docs").rglob("*.md"), *root.joinpath("combinators").rglob("*.py")]
    texts = {path: path.read_text() for path in paths}
    releases = set(re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (root / "CHANGELOG.md").read_text(), re.M))
    for path, text in texts.items():
        assert not re.search(r"\buntil 0\.\d", text), path  # "until 0.2" read as a release still to come
        pattern = r"(?:Changed in|[Ss]ince|[Ff]rom|As built \(|compared with|than in) (0\.\d(?:\.\d+)?)(?![\dx]|\.\d)"
        for version in re.findall(pattern, text):
            assert version in releases, (path, version)  # a full version the changelog lists
