"""Integration fixtures: a real staging stack per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stack import Stack, new_stack


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "")[:10]
    s = new_stack(tmp_path_factory.mktemp(name), name)
    s.up()
    try:
        yield s
    finally:
        s.down()
