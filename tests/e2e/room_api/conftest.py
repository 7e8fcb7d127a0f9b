"""The room API tests' fixtures: ``api`` (the calls, with the test's tokens) and
``build_app`` (an app with some ``rooms`` settings changed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from guichet.app import create_app
from tests.conftest import Backend, Client, Tokens, make_settings
from tests.e2e.room_helpers import Api


@pytest.fixture
def api(client: Client, tokens: Tokens) -> Api:
    return Api(client, tokens)


@pytest.fixture
def build_app(tmp_path: Path, backend: Backend) -> Callable[..., web.Application]:
    """An app whose ``rooms`` section has some values changed; call it in a thread (it reads
    key files). It shares the test's key files, so ``tokens`` work against it."""

    def build(**rooms: object) -> web.Application:
        return create_app(make_settings(tmp_path, backend.redis_section, rooms=rooms))

    return build
