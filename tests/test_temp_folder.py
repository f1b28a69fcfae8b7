"""The suite's temp-folder check (conftest.py at the root) fails a session that leaves files behind."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_this_session_has_its_own_temp_folder():
    folder = tempfile.gettempdir()
    assert os.path.basename(folder).startswith("combinators-tests-") and os.environ["TMPDIR"] == folder


@pytest.mark.parametrize(("body", "clean"), [
    ("def test_leaks():\n    tempfile.mkdtemp()\n", False),
    ("def test_cleans(tmp_path):\n    (tmp_path / 'x').write_text('x')\n    tempfile.TemporaryDirectory().cleanup()\n", True),
])
def test_a_leak_fails_the_session(tmp_path, body, clean):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "conftest.py", project / "conftest.py")
    (project / "test_example.py").write_text("import tempfile\n\n\n" + body)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(project), str(project)],
        capture_output=True, text=True, cwd=project, timeout=120,
    )
    assert (done.returncode == 0) == clean, done.stdout[-2000:]
    if not clean:
        assert "the tests left ['tmp" in done.stdout
