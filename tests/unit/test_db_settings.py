"""Which database the center opens: RTCC_DATABASE_URL, or its SQLite file by default; a
URL it cannot use stops it at start without showing the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.config import CentralSettings
from central.db.engine import parse_url
from runtime.config import ConfigError, load_settings


def test_the_default_is_an_sqlite_file_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RTCC_DATABASE_URL", raising=False)
    settings = load_settings(CentralSettings, data_dir=tmp_path)
    assert settings.database() == f"sqlite:///{tmp_path}/center.db"


def test_a_postgresql_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTCC_DATABASE_URL", "postgresql://rtcc:s3cret@db.example:5432/rtcc")
    settings = load_settings(CentralSettings)
    assert settings.database() == "postgresql://rtcc:s3cret@db.example:5432/rtcc"
    url = parse_url(settings.database())
    assert url.drivername == "postgresql+psycopg"
    assert "s3cret" not in str(url)


@pytest.mark.parametrize(
    "text", ["mysql://root:s3cret@db/rtcc", "sqlite://", "not a url at all :s3cret"]
)
def test_an_unusable_url_stops_the_center_and_hides_the_password(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("RTCC_DATABASE_URL", text)
    with pytest.raises(ConfigError) as refused:
        load_settings(CentralSettings)
    assert "RTCC_DATABASE_URL" in str(refused.value)
    assert "s3cret" not in str(refused.value)
