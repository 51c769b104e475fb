"""Settings that the notifications dispatcher reads."""

from __future__ import annotations

import pytest

from ticketing.settings import ConfigError, Settings


def test_notification_defaults() -> None:
    settings = Settings.from_env({})

    assert settings.notification_rules == ""
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_from) == ("127.0.0.1", 25, "helpdesk@localhost")
    assert settings.slack_webhook_url == ""


def test_notification_values_read() -> None:
    settings = Settings.from_env(
        {
            "NOTIFICATION_RULES": "/etc/helpdesk/rules.yaml",
            "SMTP_HOST": "mail.internal",
            "SMTP_PORT": "2525",
            "SMTP_FROM": "desk@example.org",
            "SLACK_WEBHOOK_URL": "https://hooks.example.org/T0/B0/secret",
        }
    )

    assert settings.notification_rules == "/etc/helpdesk/rules.yaml"
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_from) == ("mail.internal", 2525, "desk@example.org")
    assert settings.slack_webhook_url == "https://hooks.example.org/T0/B0/secret"


def test_webhook_url_not_in_repr() -> None:
    settings = Settings.from_env({"SLACK_WEBHOOK_URL": "https://hooks.example.org/T0/B0/secret"})

    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SMTP_PORT", "0", "a port number from 1 to 65535"),
        ("SMTP_PORT", "smtp", "a port number from 1 to 65535"),
        ("SMTP_FROM", "helpdesk", "an e-mail address"),
        ("SLACK_WEBHOOK_URL", "hooks.example.org/secret", "an http(s) URL or nothing"),
    ],
)
def test_invalid_notification_setting(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})

    assert caught.value.variable == variable
    assert expected in str(caught.value)


def test_invalid_webhook_message_hides_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SLACK_WEBHOOK_URL": "hooks.example.org/T0/B0/secret"})

    assert "secret" not in str(caught.value)
