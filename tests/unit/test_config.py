"""Security and web settings: read from the environment or files, checked before anything connects,
and never shown: no secret in a repr, in `describe()` or in an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from booster.config import RegistryAccess, Security, Settings, WebAccess
from booster.errors import ConfigError

SASL = {"BOOSTER_SECURITY_PROTOCOL": "sasl_ssl", "BOOSTER_SASL_USERNAME": "worker"}


def test_plaintext_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.security == Security() and settings.security.describe() == "PLAINTEXT"
    assert settings.web == WebAccess() and not settings.web.needs_token
    assert settings.max_record_bytes == 1_000_000


def test_the_password_comes_from_the_environment_or_the_first_line_of_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-file\nignored\n")
    from_file = Security.from_env({**SASL, "BOOSTER_SASL_PASSWORD_FILE": str(secret)})
    from_env = Security.from_env({**SASL, "BOOSTER_SASL_PASSWORD": "s3cret-from-env"})
    assert (from_file.password, from_env.password) == ("s3cret-from-file", "s3cret-from-env")
    assert from_file.protocol == "SASL_SSL" and from_file.mechanism == "SCRAM-SHA-512"
    for shown in (
        repr(from_file),
        from_file.describe(),
        repr(Settings.from_env({**SASL, "BOOSTER_SASL_PASSWORD": "s3cret-from-env"})),
    ):
        assert "s3cret" not in shown


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BOOSTER_SECURITY_PROTOCOL": "TLS"}, "BOOSTER_SECURITY_PROTOCOL"),
        ({**SASL, "BOOSTER_SASL_MECHANISM": "GSSAPI", "BOOSTER_SASL_PASSWORD": "p"}, "BOOSTER_SASL_MECHANISM"),
        (SASL, "BOOSTER_SASL_PASSWORD"),
        ({**SASL, "BOOSTER_SASL_PASSWORD": "p", "BOOSTER_SASL_PASSWORD_FILE": "/x"}, "keep one"),
        ({**SASL, "BOOSTER_SASL_PASSWORD_FILE": "/nonexistent/password"}, "cannot read"),
        ({"BOOSTER_SECURITY_PROTOCOL": "SSL", "BOOSTER_SSL_CA_FILE": "/nonexistent/ca.pem"}, "no such file"),
        ({"BOOSTER_WEB_BIND": "0.0.0.0", "BOOSTER_WEB_TOKEN": "short"}, "16 characters"),
        ({"BOOSTER_METRICS_AUTH": "maybe"}, "BOOSTER_METRICS_AUTH"),
        ({"BOOSTER_MAX_RECORD_BYTES": "10"}, "BOOSTER_MAX_RECORD_BYTES"),
        ({"BOOSTER_BULK_RESTORE": "yes"}, "BOOSTER_BULK_RESTORE"),
        ({"BOOSTER_STANDBY_REPLICAS": "-1"}, "BOOSTER_STANDBY_REPLICAS"),
    ],
)
def test_a_wrong_setting_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        Settings.from_env(env)
    assert 'p"' not in str(caught.value)


def test_tls_files_need_a_tls_protocol_and_come_in_pairs(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("-")
    with pytest.raises(ConfigError, match="does not use TLS"):
        Security.from_env({"BOOSTER_SSL_CA_FILE": str(pem)})
    with pytest.raises(ConfigError, match="both BOOSTER_SSL_CERT_FILE and BOOSTER_SSL_KEY_FILE"):
        Security.from_env({"BOOSTER_SECURITY_PROTOCOL": "SSL", "BOOSTER_SSL_CERT_FILE": str(pem)})


def test_the_web_token_is_needed_beyond_loopback_and_whenever_it_is_set() -> None:
    assert not WebAccess.from_env({"BOOSTER_WEB_BIND": "127.0.0.1"}).needs_token
    far = WebAccess.from_env({"BOOSTER_WEB_BIND": "0.0.0.0", "BOOSTER_WEB_TOKEN": "x" * 16})
    assert far.needs_token and far.metrics_open and "xxxx" not in repr(far)
    assert WebAccess.from_env({"BOOSTER_WEB_TOKEN": "y" * 20}).needs_token
    assert not WebAccess.from_env({"BOOSTER_METRICS_AUTH": "token"}).metrics_open


def test_recovery_settings() -> None:
    default = Settings.from_env({})
    assert default.bulk_restore and default.standby_replicas == 0
    chosen = Settings.from_env({"BOOSTER_BULK_RESTORE": "off", "BOOSTER_STANDBY_REPLICAS": "2"})
    assert not chosen.bulk_restore and chosen.standby_replicas == 2


def test_the_schema_registry_is_off_by_default_and_its_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    assert not Settings.from_env({}).registry.enabled
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    access = Settings.from_env(
        {"BOOSTER_SCHEMA_REGISTRY_URL": "https://sr.example.com/", "BOOSTER_SCHEMA_REGISTRY_TOKEN_FILE": str(token)}
    ).registry
    assert access.enabled and access.url == "https://sr.example.com" and access.token == "s3cret-token"
    basic = RegistryAccess.from_env(
        {
            "BOOSTER_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081/apis/ccompat/v7",
            "BOOSTER_SCHEMA_REGISTRY_USERNAME": "key",
            "BOOSTER_SCHEMA_REGISTRY_PASSWORD": "hunter2",
        }
    )
    assert (basic.username, basic.password) == ("key", "hunter2")
    assert "hunter2" not in repr(basic) and "s3cret" not in repr(access)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BOOSTER_SCHEMA_REGISTRY_URL": "sr.example.com:8081"}, "BOOSTER_SCHEMA_REGISTRY_URL"),
        ({"BOOSTER_SCHEMA_REGISTRY_URL": "http://sr", "BOOSTER_SCHEMA_REGISTRY_USERNAME": "key"}, "PASSWORD"),
        (
            {
                "BOOSTER_SCHEMA_REGISTRY_URL": "http://sr",
                "BOOSTER_SCHEMA_REGISTRY_USERNAME": "key",
                "BOOSTER_SCHEMA_REGISTRY_PASSWORD": "p",
                "BOOSTER_SCHEMA_REGISTRY_TOKEN": "t",
            },
            "not both",
        ),
    ],
)
def test_a_wrong_registry_setting_says_what_to_set(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
