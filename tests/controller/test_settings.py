"""Settings parsed from `HOMERUN_*` variables, and database URLs given their async drivers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from controller.db.engine import async_url
from controller.limits import SystemLimits
from controller.settings import ConfigError, load_settings, variable_name


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No `HOMERUN_*` variable leaks in from the caller; the home directory is a temporary
    one. Returns that home directory."""
    for name in list(os.environ):
        if name.upper().startswith("HOMERUN_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def test_defaults(clean_environment: Path) -> None:
    settings = load_settings()

    assert settings.port == 3233
    assert settings.host == "127.0.0.1"
    assert settings.log_level == "info"
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.api_host is None
    assert settings.runtimes_manifest is None
    assert settings.data_dir == clean_environment / ".homerun"
    assert settings.limits == SystemLimits()
    assert settings.public_api_host == "http://localhost:3233"


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")

    expected = (tmp_path / "data" / "homerun.db").resolve()
    assert settings.effective_database_url == f"sqlite:///{expected}"


def test_relative_data_dir_gives_an_absolute_database_path(tmp_path: Path) -> None:
    settings = load_settings(data_dir=Path("relative"))

    expected = (tmp_path / "relative" / "homerun.db").resolve()
    assert settings.effective_database_url == f"sqlite:///{expected}"


def test_database_url_wins_over_the_data_dir(tmp_path: Path) -> None:
    url = "postgresql://postgres@db:5432/homerun"

    settings = load_settings(data_dir=tmp_path, database_url=url)

    assert settings.effective_database_url == url


def test_default_limits_follow_adobe_io_runtime() -> None:
    limits = load_settings().limits

    assert (limits.timeout_min, limits.timeout_max, limits.timeout_default) == (
        100,
        10_800_000,
        60_000,
    )
    assert (limits.memory_min, limits.memory_max, limits.memory_default) == (128, 4096, 256)
    assert (limits.logs_min, limits.logs_max, limits.logs_default) == (0, 10, 10)


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("HOMERUN_PORT", "8080", "port", 8080),
        ("HOMERUN_PORT", "0", "port", 0),
        ("HOMERUN_PORT", "65535", "port", 65535),
        ("HOMERUN_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("HOMERUN_DATABASE_URL", "postgresql://u@db/h", "database_url", "postgresql://u@db/h"),
        (
            "HOMERUN_DATABASE_URL",
            "postgresql://u@db/h",
            "effective_database_url",
            "postgresql://u@db/h",
        ),
        ("HOMERUN_REDIS_URL", "redis://cache:6379/0", "redis_url", "redis://cache:6379/0"),
        ("HOMERUN_DATA_DIR", "/srv/homerun", "data_dir", Path("/srv/homerun")),
        (
            "HOMERUN_API_HOST",
            "https://runtime.example.com",
            "api_host",
            "https://runtime.example.com",
        ),
        ("HOMERUN_RUNTIMES_MANIFEST", "/etc/rt.json", "runtimes_manifest", Path("/etc/rt.json")),
        ("HOMERUN_LOG_LEVEL", "debug", "log_level", "debug"),
        ("HOMERUN_LOG_LEVEL", "warning", "log_level", "warning"),
        ("homerun_port", "9090", "port", 9090),
    ],
)
def test_environment_variables(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: Any
) -> None:
    monkeypatch.setenv(variable, value)

    assert getattr(load_settings(), attribute) == expected


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("HOMERUN_LIMITS__MEMORY_MAX", "2048", "memory_max", 2048),
        ("HOMERUN_LIMITS__MEMORY_DEFAULT", "512", "memory_default", 512),
        ("HOMERUN_LIMITS__TIMEOUT_MAX", "600000", "timeout_max", 600_000),
        ("HOMERUN_LIMITS__LIST_MAX", "50", "list_max", 50),
        ("HOMERUN_LIMITS__CODE_MAX_BYTES", "1048576", "code_max_bytes", 1_048_576),
    ],
)
def test_nested_limit_variables(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: int
) -> None:
    monkeypatch.setenv(variable, value)

    limits = load_settings().limits

    assert getattr(limits, field) == expected
    assert limits.model_dump() == SystemLimits().model_dump() | {field: expected}


def test_several_limit_variables_combine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMERUN_LIMITS__MEMORY_MIN", "64")
    monkeypatch.setenv("HOMERUN_LIMITS__MEMORY_DEFAULT", "64")
    monkeypatch.setenv("HOMERUN_LIMITS__MEMORY_MAX", "128")

    limits = load_settings().limits

    assert (limits.memory_min, limits.memory_default, limits.memory_max) == (64, 64, 128)


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMERUN_PORT", "8080")
    monkeypatch.setenv("HOMERUN_LOG_LEVEL", "debug")

    settings = load_settings(port=9000)

    assert (settings.port, settings.log_level) == (9000, "debug")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOMERUN_PORT", "abc"),
        ("HOMERUN_PORT", "70000"),
        ("HOMERUN_PORT", "-1"),
        ("HOMERUN_PORT", "80.5"),
        ("HOMERUN_LOG_LEVEL", "loud"),
        ("HOMERUN_LIMITS__MEMORY_MAX", "abc"),
        ("HOMERUN_LIMITS__MEMORY_MIN", "0"),
        ("HOMERUN_LIMITS__LOGS_MAX", "-1"),
        ("HOMERUN_LIMITS__BOGUS", "1"),
        ("HOMERUN_LIMITS__MEMORY_DEFAULT", "99999"),
        ("HOMERUN_LIMITS__MEMORY_MAX", "200"),
        ("HOMERUN_LIMITS__TIMEOUT_DEFAULT", "50"),
        ("HOMERUN_LIMITS__LIST_DEFAULT", "201"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as raised:
        load_settings()

    message = str(raised.value)
    assert variable.upper() in message
    assert value in message


def test_every_bad_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMERUN_PORT", "abc")
    monkeypatch.setenv("HOMERUN_LOG_LEVEL", "loud")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    lines = str(raised.value).splitlines()
    assert any(line.strip().startswith("HOMERUN_PORT:") for line in lines)
    assert any(line.strip().startswith("HOMERUN_LOG_LEVEL:") for line in lines)


def test_bad_override_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="HOMERUN_PORT"):
        load_settings(port=99999)


def test_settings_are_frozen() -> None:
    settings = load_settings()

    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("host", "port", "api_host", "expected"),
    [
        ("127.0.0.1", 3233, None, "http://localhost:3233"),
        ("0.0.0.0", 8080, None, "http://localhost:8080"),
        ("::", 3233, None, "http://localhost:3233"),
        ("runtime.internal", 3233, None, "http://runtime.internal:3233"),
        ("0.0.0.0", 3233, "https://runtime.example.com/", "https://runtime.example.com"),
        ("0.0.0.0", 3233, "https://example.com/runtime", "https://example.com/runtime"),
    ],
)
def test_public_api_host(host: str, port: int, api_host: str | None, expected: str) -> None:
    settings = load_settings(host=host, port=port, api_host=api_host)

    assert settings.public_api_host == expected


@pytest.mark.parametrize(
    ("location", "variable"),
    [
        (("port",), "HOMERUN_PORT"),
        (("log_level",), "HOMERUN_LOG_LEVEL"),
        (("limits", "memory_max"), "HOMERUN_LIMITS__MEMORY_MAX"),
    ],
)
def test_variable_name(location: tuple[str, ...], variable: str) -> None:
    assert variable_name(location) == variable


# Database URLs.


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db/homerun", "postgresql+asyncpg://u:p@db/homerun"),
        ("postgresql://u:p@db/homerun", "postgresql+asyncpg://u:p@db/homerun"),
        (
            "postgresql://postgres@127.0.0.1:5432/x",
            "postgresql+asyncpg://postgres@127.0.0.1:5432/x",
        ),
        ("postgresql://u:p%40ss@db:5433/h", "postgresql+asyncpg://u:p%40ss@db:5433/h"),
        ("postgresql+asyncpg://u@db/h", "postgresql+asyncpg://u@db/h"),
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        (
            "sqlite:////var/lib/homerun/homerun.db",
            "sqlite+aiosqlite:////var/lib/homerun/homerun.db",
        ),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_async_url(url: str, expected: str) -> None:
    assert async_url(url) == expected


@pytest.mark.parametrize(
    "url", ["mysql://u@db/homerun", "mysql+aiomysql://u@db/h", "oracle://u@db/h", "mssql://u@db/h"]
)
def test_async_url_rejects_unsupported_databases(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        async_url(url)
