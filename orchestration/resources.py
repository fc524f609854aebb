"""Dagster resources: every connection the assets use, configured from the settings object."""

from __future__ import annotations

from functools import cached_property

import dagster as dg
from clickhouse_connect.driver.client import Client
from sqlalchemy import Engine

from core import db
from core.blobs import BlobStore, blob_store_at
from core.settings import Settings
from core.warehouse import warehouse_client


class WarehouseResource(dg.ConfigurableResource):
    """ClickHouse (the embedded warehouse or a real server) at CLICKHOUSE_URL."""

    url: str

    def client(self) -> Client:
        return warehouse_client(self.url)


class PostgresResource(dg.ConfigurableResource):
    url: str

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.url)


class BlobStoreResource(dg.ConfigurableResource):
    url: str
    s3_endpoint_url: str | None = None

    def store(self) -> BlobStore:
        return blob_store_at(self.url, self.s3_endpoint_url)


def resources_from(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(url=settings.clickhouse_url),
        "postgres": PostgresResource(url=settings.database_url),
        "blobs": BlobStoreResource(url=settings.blob_url, s3_endpoint_url=settings.s3_endpoint_url),
    }
