"""One place for settings, so CLI, API and pipelines resolve ``CURATE_HOME`` the same way."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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


def get_settings(home: str | Path | None = None) -> Settings:
    """Settings from the environment, with an explicit ``home`` (``--home``) taking precedence."""
    return Settings(home=Path(home)) if home is not None else Settings()
