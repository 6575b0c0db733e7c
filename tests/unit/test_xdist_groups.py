"""The suite's scheduling: tests sharing a module-scoped fixture run on one worker.

A module's stack or servers come up once only if `--dist loadgroup` really groups its
tests; when grouping silently broke (pytest 9 + xdist 3.8) each of three workers brought
up its own copy. This runs a small suite under the real conftest and counts set-ups.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SUITE = '''
import os
import pytest

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    marker = os.environ["SETUPS"]
    with open(marker, "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "-") + "\\n")
    return 1

@pytest.mark.parametrize("n", range(8))
def test_uses_shared(shared, n):
    assert shared == 1

@pytest.mark.parametrize("n", range(8))
def test_alone(n):
    assert n >= 0
'''


def test_module_fixture_comes_up_once_under_loadgroup(
        pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(Path(__file__).parents[1] / "conftest.py", pytester.path / "conftest.py")
    pytester.makepyfile(test_grouped=SUITE)
    setups = tmp_path / "setups"
    monkeypatch.setenv("SETUPS", str(setups))
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-q")
    result.assert_outcomes(passed=16)
    assert len(setups.read_text().splitlines()) == 1, setups.read_text()
