from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import db
from core.settings import Settings
from core.warehouse import connect
from tests.orchestration.windows import Stores
from tests.stack import new_project


@pytest.fixture(scope="module")
def stores(stack_settings: Settings, postgres_url: str, warehouse_url: str) -> Iterator[Stores]:
    """PostgreSQL and the warehouse only: windows are run by the test, not by a runner."""
    db.upgrade(postgres_url)
    client = connect(warehouse_url)
    try:
        yield Stores(stack_settings, client, db.make_engine(postgres_url),
                     new_project(stack_settings))
    finally:
        client.close()
