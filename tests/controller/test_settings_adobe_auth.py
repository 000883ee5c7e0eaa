"""`HOMERUN_ADOBE_AUTH__*`: the JWT issuer that `require-adobe-auth` validators accept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.settings import AdobeAuthSettings, ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("HOMERUN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_no_issuer_by_default() -> None:
    settings = load_settings()
    assert settings.adobe_auth == AdobeAuthSettings()
    assert not settings.adobe_auth.enabled


def test_an_issuer_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    monkeypatch.setenv("HOMERUN_ADOBE_AUTH__ISSUER", "https://ims.example.test")
    monkeypatch.setenv("HOMERUN_ADOBE_AUTH__AUDIENCE", "apps")
    monkeypatch.setenv("HOMERUN_ADOBE_AUTH__JWKS", str(jwks))
    monkeypatch.setenv("HOMERUN_ADOBE_AUTH__ORG_CLAIM", "org")
    monkeypatch.setenv("HOMERUN_ADOBE_AUTH__LEEWAY_S", "5")

    adobe_auth = load_settings().adobe_auth

    assert adobe_auth == AdobeAuthSettings(
        issuer="https://ims.example.test", audience="apps", jwks=str(jwks), org_claim="org",
        leeway_s=5,
    )  # fmt: skip
    assert adobe_auth.enabled and not adobe_auth.jwks_is_url


def test_a_jwks_url_is_not_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMERUN_ADOBE_AUTH__ISSUER", "https://ims.example.test")
    monkeypatch.setenv("HOMERUN_ADOBE_AUTH__AUDIENCE", "apps")
    monkeypatch.setenv("HOMERUN_ADOBE_AUTH__JWKS", "https://ims.example.test/keys")
    assert load_settings().adobe_auth.jwks_is_url


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"ISSUER": "i"}, "set HOMERUN_ADOBE_AUTH__AUDIENCE, HOMERUN_ADOBE_AUTH__JWKS"),
        ({"ISSUER": "i", "AUDIENCE": "a", "JWKS": "/nonexistent/jwks.json"},
         "the JWKS file /nonexistent/jwks.json does not exist"),
        ({"ORG_CLAIM": "org"}, "HOMERUN_ADOBE_AUTH__ORG_CLAIM applies to JWTs"),
        ({"LEEWAY_S": "-1"}, "HOMERUN_ADOBE_AUTH__LEEWAY_S"),
    ],
)  # fmt: skip
def test_incomplete_settings_fail_fast(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"HOMERUN_ADOBE_AUTH__{name}", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)
