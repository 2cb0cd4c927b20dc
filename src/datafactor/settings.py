"""Process-wide settings, read from ``DATAFACTOR_*`` environment variables and ``.env``.

Every knob an operator can turn lives here with its default and a description; ``docs/operations.md``
lists them and a test fails when one is undocumented. Production mode refuses to start with the
development secret key, because sessions, CSRF tokens and the audit HMAC all derive from it.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class InsecureSettingsError(RuntimeError):
    """Raised when production mode is started with a development-only setting."""


class Settings(BaseSettings):
    """Settings of one DataFactor process."""

    model_config = SettingsConfigDict(env_prefix="DATAFACTOR_", env_file=".env", extra="ignore")

    environment: Environment = Field(
        Environment.DEVELOPMENT, description="development, test or production."
    )
    secret_key: str = Field(
        DEV_SECRET_KEY,
        description="Secret for session and CSRF tokens. Must be changed in production.",
    )
    database_url: str = Field(
        "sqlite:///var/datafactor.db",
        description="SQLAlchemy URL of the control-plane database, e.g. "
        "postgresql+psycopg://user:pass@host/dbname. SQLite runs in WAL mode.",
    )
    var_dir: Path = Field(Path("var"), description="Folder for local state (SQLite file, keys).")
    default_locale: str = Field("zh_CN", description="UI language when the user has not chosen.")
    public_base_url: str = Field(
        "",
        pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$",
        description="The public address of the site (e.g. https://dr.example.cn), used in links "
        "that leave the site, such as the QR code on a certificate PDF. Empty: the address the "
        "request came in on.",
    )
    session_hours: int = Field(8, ge=1, le=720, description="Web session lifetime in hours.")
    login_slowdown_after: int = Field(
        3, ge=1, description="Wrong passwords in a row after which each answer is delayed."
    )
    login_lock_after: int = Field(
        5, ge=1, description="Wrong passwords in a row after which the account is locked."
    )
    login_lock_minutes: int = Field(15, ge=1, description="How long a locked account stays locked.")
    api_token_days: int = Field(
        30, ge=1, le=3650, description="Default validity of a new API token in days."
    )
    cookie_secure: bool = Field(
        False, description="Mark cookies Secure (HTTPS only). Forced on in production."
    )
    password_hash_profile: str = Field(
        "rfc9106-low-memory",
        pattern="^(rfc9106-low-memory|test)$",
        description="Argon2id cost profile: the RFC 9106 low-memory profile, or the cheapest "
        "'test' profile that only the test suite may use (refused in production).",
    )
    storage_url: str = Field(
        "",
        description="Where data bytes live: empty for <var_dir>/storage, or an fsspec URL such "
        "as s3://bucket/prefix (needs s3fs and its credentials in the environment).",
    )
    upload_max_bytes: int = Field(
        2 * 1024**3, ge=1, description="Largest upload accepted, in bytes (default 2 GiB)."
    )
    upload_chunk_max_bytes: int = Field(
        16 * 1024**2,
        ge=1024,
        description="Largest chunk of a resumable upload accepted in one request (default 16 MiB).",
    )
    upload_expire_hours: int = Field(
        72,
        ge=1,
        description="An unfinished resumable upload older than this is abandoned and its bytes "
        "deleted (checked by the scan runners).",
    )
    source_allow_sqlite: bool = Field(
        False,
        description="Allow SQLite files on the server as live data set sources (off: a user "
        "could otherwise point a scan at any file the server can read).",
    )
    scan_runner: str = Field(
        "auto",
        pattern="^(auto|on|off)$",
        description="Run the background scan runner in each server process: on, off, or auto "
        "(on, except in the test environment, whose tests run jobs themselves).",
    )
    scan_sample_rows: int = Field(
        100_000, ge=100, description="Rows a sample scan reads (a full scan reads every row)."
    )
    scan_poll_seconds: float = Field(
        2.0, gt=0, le=300, description="How often an idle scan runner looks for queued jobs."
    )
    scan_heartbeat_seconds: float = Field(
        5.0, gt=0, le=300, description="How often a running scan records progress and liveness."
    )
    scan_stale_seconds: int = Field(
        60,
        ge=5,
        description="A running scan whose heartbeat is older than this is given to another runner.",
    )
    scan_max_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Runs of one scan job (restarts after a lost runner) before it fails.",
    )
    scan_queue_timeout_minutes: int = Field(
        24 * 60, ge=1, description="A scan job nobody started within this time fails as expired."
    )
    scan_max_run_minutes: int = Field(
        6 * 60, ge=1, description="A scan running longer than this is stopped and fails."
    )
    census_runner: str = Field(
        "auto",
        pattern="^(auto|on|off)$",
        description="Run the background census runner in each server process: on, off, or auto "
        "(on, except in the test environment). It shares the scan runners' poll, heartbeat, "
        "stale, attempt and queue-timeout settings.",
    )
    census_sample_rows: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Rows a census reads from each table for its scan, unless the request says.",
    )
    census_max_run_minutes: int = Field(
        24 * 60,
        ge=1,
        description="A census running longer than this is stopped and fails (it can be resumed).",
    )
    census_count_timeout_seconds: float = Field(
        300.0,
        gt=0,
        le=24 * 3600,
        description="Longest a census waits for one table's row count (COUNT(*)); a huge or "
        "locked table is then recorded as 'count timed out' and the census goes on.",
    )
    detokenise_max_tokens: int = Field(
        1000,
        ge=1,
        le=10_000,
        description="Most tokens a trustee may reverse in one request.",
    )
    detokenise_max_per_hour: int = Field(
        20_000,
        ge=1,
        description="Most values the users of one trustee party may reverse in any hour.",
    )
    duckdb_memory_limit: str = Field(
        "2GB", description="Memory limit of each embedded DuckDB engine (DuckDB syntax)."
    )
    duckdb_threads: int = Field(2, ge=1, le=64, description="Threads of each DuckDB engine.")
    spark_master: str = Field(
        "local[2]",
        description="Master URL of the Spark engine: local[N] runs Spark in this process with N "
        "threads; spark://host:7077 uses a cluster whose executors must see the blob store.",
    )
    spark_driver_memory: str = Field(
        "1g",
        description="Memory of the Spark driver JVM (Spark syntax, e.g. 1g); applied when the "
        "process starts its first Spark engine.",
    )
    spark_remote: str = Field(
        "",
        description="Spark Connect URL (sc://host:15002) on which the sandbox runs its queries "
        "over large data sets; empty runs them on the process's own Spark session "
        "(DATAFACTOR_SPARK_MASTER). The server must read the sandbox's files at the same path.",
    )
    worker_threads: int = Field(
        8, ge=1, le=200, description="Threads per worker process for blocking database calls."
    )
    db_pool_size: int = Field(
        20, ge=1, description="PostgreSQL connections per worker process (a fixed pool)."
    )

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
                raise InsecureSettingsError(
                    "DATAFACTOR_SECRET_KEY must be set to a random value of at least 32 characters "
                    "in production (for example: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))')."
                )
            if self.password_hash_profile == "test":
                raise InsecureSettingsError(
                    "DATAFACTOR_PASSWORD_HASH_PROFILE=test is for the test suite only."
                )
            self.cookie_secure = True
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
