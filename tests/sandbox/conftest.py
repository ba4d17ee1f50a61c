"""Fixtures of the Salesforce emulator tests: a TLS server of their own per test module."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests
from simple_salesforce import Salesforce

from sandbox.salesforce.testing import Running, serve

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Running]:
    with serve(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])) as running:
        yield running


@pytest.fixture(scope="module")
def token(sb: Running) -> str:
    return sb.token()


@pytest.fixture
def sf(sb: Running, token: str) -> Salesforce:
    return Salesforce(instance_url=sb.base_url, session_id=token, session=sb.session())


@pytest.fixture
def http(sb: Running, token: str) -> requests.Session:
    s = sb.session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s
