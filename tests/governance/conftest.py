"""Fixtures for the governance tests: real SQLite workspaces and throwaway PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from governance.ledger import Ledger, create_workspace
from governance.workspace import Workspace
from tests.fedgov_command import PASSPHRASE

PG_ADMIN_URL = os.environ.get("FEDGOV_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
VECTORS = Path(__file__).resolve().parents[1] / "data" / "rfc9162-merkle"  # vendored: see its README and LICENSE


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FEDGOV_HOME", "FEDGOV_DB_URL", "FEDGOV_KEK", "FEDGOV_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FEDGOV_PASSPHRASE", PASSPHRASE)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return create_workspace(tmp_path / ".fedgov", PASSPHRASE)


@pytest.fixture
def ledger(workspace: Workspace) -> Iterator[Ledger]:
    with Ledger.open(workspace) as opened:
        yield opened


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards; skip when no server answers."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.skip(f"no PostgreSQL server answers at {PG_ADMIN_URL}: {err}")
    name = f"fedgov_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
