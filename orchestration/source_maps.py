"""Source maps uploaded as release artifacts, as the symbolication stage reads them.

Apart from orchestration.processing because the pipeline's worker processes load this and
not that: a worker is spawned with a fresh interpreter, and every import it does not need
(the warehouse client, the ingest package, Alembic) cost each start seconds of CPU taken
from the events waiting for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from core.blobs import BlobNotFound, BlobStore
from core.db import system_session
from core.models import Artifact, Release
from pipelines.symbolication import artifact_names_for_url


class StoredSourceMaps:
    """Source maps uploaded as release artifacts: rows in PostgreSQL, bytes in the blob store.

    Whatever this raises means storage failed (PostgreSQL or the blob store unreachable, a
    timeout): the pipeline fails the window, to be retried, and sets no event aside for it
    (pipelines.batch.StorageUnavailable). So what an event names that no artifact can be
    stored under is answered here, without asking storage: PostgreSQL text cannot hold NUL,
    and the query would fail as if the database had."""

    def __init__(self, engine: Engine, blobs: BlobStore) -> None:
        self.engine = engine
        self.blobs = blobs

    def _read(self, statement: Any) -> bytes | None:
        with system_session(self.engine) as session:
            blob_key = session.scalar(statement.limit(1))
        if blob_key is None:
            return None
        try:
            return self.blobs.get(blob_key)
        except BlobNotFound:
            return None

    def by_debug_id(self, organization_id: int, debug_id: str) -> bytes | None:
        return self._read(
            select(Artifact.blob_key)
            .where(Artifact.organization_id == organization_id,
                   Artifact.debug_id == debug_id.lower())
            .order_by(Artifact.id.desc())
        )

    def by_release(
        self, organization_id: int, release: str, dist: str | None, url: str
    ) -> bytes | None:
        if "\x00" in f"{release}{dist or ''}{url}":
            return None  # no artifact can be named so (an SDK may send \u0000)
        names = artifact_names_for_url(url)
        maps = [name if name.endswith(".map") else f"{name}.map" for name in names]
        return self._read(
            select(Artifact.blob_key)
            .join(Release, Release.id == Artifact.release_id)
            .where(Release.organization_id == organization_id, Release.version == release,
                   Artifact.dist == (dist or ""), Artifact.name.in_(maps + names))
            .order_by(Artifact.name.endswith(".map").desc(), Artifact.id.desc())
        )
