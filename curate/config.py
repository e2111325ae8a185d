"""One place for settings, so CLI, API and pipelines resolve ``CURATE_HOME`` the same way."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Decompressed bytes allowed per compressed byte uploaded. Text JSONL/CSV compresses 3-6x with gzip
# or zstd (10x for very repetitive records); a compression bomb expands ~1000x and is cut at 1 % of it.
EXPANSION = 10


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CURATE_", extra="ignore", populate_by_name=True)

    home: Path = Field(default=Path(".curate"), description="Root folder of every artifact.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the catalog; default SQLite in CURATE_HOME."
    )
    api_tokens: str = Field(default="", description="'token:read,write;token2:read' for the API.")
    chunk_rows: int = Field(default=50_000, ge=1, description="Rows per streamed chunk.")
    cache_dir_override: Path | None = Field(
        default=None,
        alias="CURATE_CACHE_DIR",
        description="Embedding cache shared by several homes (default CURATE_HOME/cache).",
    )
    pool_roots: str = Field(
        default="",
        description="Server-side folders pools may be read from (os.pathsep- or comma-separated); empty = none.",
    )
    max_upload_bytes: int = Field(default=1 << 30, ge=1, description="Largest accepted pool upload (413 past it).")
    max_request_bytes: int = Field(default=1 << 20, ge=1, description="Largest accepted JSON request body.")
    max_upload_expanded_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Largest decompressed size of an upload or server-side pool file (413 past it); "
        f"default {EXPANSION}x max_upload_bytes.",
    )
    max_record_bytes: int = Field(
        default=16 << 20, ge=1, description="Longest line/record of an upload or server-side pool file (413 past it)."
    )
    progress_seconds: float = Field(
        default=5.0, ge=0, description="Seconds between progress lines on stderr when it is not a terminal."
    )
    workers: int = Field(default=1, ge=0, description="Worker processes `curate serve` starts beside the API.")
    job_poll_seconds: float = Field(default=0.5, gt=0, description="How often an idle worker looks for a job.")
    job_heartbeat_seconds: float = Field(default=2.0, gt=0, description="How often a busy worker reports in.")
    job_stale_seconds: float = Field(
        default=60.0, gt=0, description="A running job whose worker is silent this long is recovered."
    )
    job_max_attempts: int = Field(default=3, ge=1, description="Runs of a job before recovery fails it.")

    @model_validator(mode="after")
    def _default_expanded_limit(self) -> Settings:
        if self.max_upload_expanded_bytes is None:
            self.max_upload_expanded_bytes = EXPANSION * self.max_upload_bytes
        return self

    @cached_property
    def root(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.root / 'catalog.db'}"

    @property
    def pools_dir(self) -> Path:
        return self.root / "pools"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    @property
    def cache_dir(self) -> Path:
        return self.cache_dir_override.expanduser().resolve() if self.cache_dir_override else self.root / "cache"

    @property
    def uploads_dir(self) -> Path:
        return self.root / "uploads"

    @property
    def allowed_roots(self) -> list[Path]:
        """Resolved ``pool_roots``: the only folders a server-side ``path`` may point into."""
        parts = self.pool_roots.replace(",", os.pathsep).split(os.pathsep)
        return [Path(p).expanduser().resolve() for p in parts if p.strip()]


def get_settings(home: str | Path | None = None) -> Settings:
    """Settings from the environment, with an explicit ``home`` (``--home``) taking precedence."""
    return Settings(home=Path(home)) if home is not None else Settings()
