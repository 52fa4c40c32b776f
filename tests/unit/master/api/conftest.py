"""Fixtures for the API tests: `env`, the Deltacloud API's application over a store, a user file, a key store and a
fake schedd (support.make_api_env; constraints are evaluated with the real classad2 library, so ownership filtering
is tested for real). The request helpers (auth, jsonh, xml, html, browser, login) are in support.py."""

import pytest

from support import make_api_env


@pytest.fixture
def env(tmp_path, mocker, monkeypatch):
    return make_api_env(tmp_path, mocker, monkeypatch)
