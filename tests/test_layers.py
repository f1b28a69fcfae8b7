"""The house's shape: the layers import-linter keeps, no import cycle at all, no module over 600 lines.

import-linter's contracts (pyproject.toml, run by .ci/run) keep lower layers from
importing higher ones; grimp's graph, which counts imports inside functions too,
shows every cycle, also one within a layer. Both are tried on a copy of the
package with a cycle added on purpose, so a check that cannot fail would show.
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
grimp = pytest.importorskip("grimp")

#: a module may have at most this many lines
MAX_LINES = 600


def import_cycles(root: pathlib.Path) -> list[list[str]]:
    """The import cycles among the modules of ``root/combinators`` (function-level imports included)."""
    code = (
        "import grimp, json, sys; sys.setrecursionlimit(10000)\n"
        "g = grimp.build_graph('combinators', cache_dir=None)\n"
        "print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": ""})
    assert done.returncode == 0, done.stderr
    import json

    edges = json.loads(done.stdout)
    return _strongly_connected(edges)


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(edges.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def lint_imports(root: pathlib.Path) -> subprocess.CompletedProcess:
    linter = shutil.which("lint-imports") or str(pathlib.Path(sys.executable).parent / "lint-imports")
    return subprocess.run([linter, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": str(pathlib.Path(sys.executable).parent)})


@pytest.fixture(scope="module")
def copy_with_a_cycle(tmp_path_factory):
    """The package and its contracts, with the plan layer importing the interpreter on purpose."""
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(ROOT / "combinators", root / "combinators", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    stream = root / "combinators" / "plan" / "stream.py"  # execution.run imports it: a cycle, and a layer broken
    stream.write_text(stream.read_text() + "\n\ndef _run(s):\n    from combinators.execution.run import iterate\n\n"
                      "    return iterate(s)\n")
    return root


def test_the_package_has_no_import_cycle():
    assert import_cycles(ROOT) == []


def test_a_cycle_added_on_purpose_is_found(copy_with_a_cycle):
    cycles = import_cycles(copy_with_a_cycle)
    assert any("combinators.plan.stream" in cycle and "combinators.execution.run" in cycle for cycle in cycles)


def test_the_layer_contracts_are_kept():
    pytest.importorskip("importlinter")
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "broken" in done.stdout and " 0 broken" in done.stdout


def test_a_layer_broken_on_purpose_fails_the_contracts(copy_with_a_cycle):
    pytest.importorskip("importlinter")
    done = lint_imports(copy_with_a_cycle)
    assert done.returncode != 0
    assert "combinators.plan.stream -> combinators.execution.run" in done.stdout


def test_no_module_is_over_600_lines():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in ROOT.glob("combinators/**/*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
