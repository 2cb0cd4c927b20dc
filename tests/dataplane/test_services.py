"""The data plane built from settings: the default local store, uploads bounded by the setting."""

from __future__ import annotations

import io

import pytest

from datafactor.dataplane import BlobTooLarge, blob_store, duckdb_engine
from datafactor.settings import Settings


def test_store_and_engine_follow_the_settings(tmp_path):
    settings = Settings(var_dir=tmp_path, upload_max_bytes=10, duckdb_threads=1)
    store = blob_store(settings)
    blob = store.put_stream(io.BytesIO(b"a,b\n1,2\n"), max_bytes=settings.upload_max_bytes)
    assert store.exists(blob.digest)
    assert str(store.path_for(blob.digest)).startswith(str(tmp_path / "storage"))
    with pytest.raises(BlobTooLarge):
        store.put_stream(io.BytesIO(b"x" * 11), max_bytes=settings.upload_max_bytes)
    engine = duckdb_engine(settings, store)
    assert engine.setting("threads") in (1, "1")


def test_storage_url_selects_an_fsspec_store(tmp_path):
    store = blob_store(Settings(var_dir=tmp_path, storage_url="memory://df-test-store"))
    assert not store.is_local
