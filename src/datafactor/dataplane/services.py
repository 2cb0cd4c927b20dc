"""The data plane as configured for this process: the blob store and DuckDB engines from settings."""

from __future__ import annotations

from datafactor.dataplane.engine import DuckDBEngine
from datafactor.dataplane.storage import BlobStore
from datafactor.settings import Settings


def blob_store(settings: Settings) -> BlobStore:
    """The store named by ``DATAFACTOR_STORAGE_URL`` (default: ``<var_dir>/storage``)."""
    work_dir = settings.var_dir / "uploads"
    if settings.storage_url:
        return BlobStore.from_url(settings.storage_url, work_dir=work_dir)
    return BlobStore(settings.var_dir / "storage", work_dir=work_dir)


def duckdb_engine(settings: Settings, store: BlobStore) -> DuckDBEngine:
    """A locked-down DuckDB that may read only ``store``'s files, sized by the settings."""
    return DuckDBEngine.for_store(
        store, memory_limit=settings.duckdb_memory_limit, threads=settings.duckdb_threads
    )
