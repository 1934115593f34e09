"""``twistd dualmail`` sending options: parsed into one SubmissionConfig,
bad values refused at start, the queue runner only with ``--smarthost``."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from dualmail.submission.config import MAX_RECIPIENTS
from dualmail.tap import Options, makeService


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_defaults_and_options(tmp_path):
    config = parse("--data", str(tmp_path))["submission"]
    assert config.smarthost is None and config.limits.max_recipients == MAX_RECIPIENTS
    auth = tmp_path / "auth"
    auth.write_text("relay-user:s3cr:et\n")
    config = parse("--data", str(tmp_path), "--smarthost", "tcp:127.0.0.1:25", "--smarthost-auth", str(auth),
                   "--max-recipients", "5", "--max-messages-per-hour", "6", "--max-recipients-per-day", "7",
                   "--max-send-size", "8", "--queue-lifetime", "9", "--smarthost-starttls", "require",
                   "--smarthost-helo", "mx.example.org")["submission"]
    assert (config.smarthost, config.username, config.password) == ("tcp:127.0.0.1:25", "relay-user", "s3cr:et")
    assert (config.limits.max_recipients, config.limits.max_messages_per_hour, config.limits.max_recipients_per_day,
            config.limits.max_size, config.lifetime) == (5, 6, 7, 8, 9)
    assert config.starttls == "require" and config.hostname == "mx.example.org"


@pytest.mark.parametrize("args", [
    ("--max-recipients", "0"), ("--max-send-size", "lots"), ("--smarthost-starttls", "maybe"),
    ("--smarthost-auth", "/nonexistent/auth"),
])
def test_bad_values_are_usage_errors(tmp_path, args):
    with pytest.raises(usage.UsageError):
        parse("--data", str(tmp_path), *args)


def test_auth_file_forms(tmp_path):
    from dualmail.submission.config import ConfigError, read_auth_file

    f = tmp_path / "a"
    f.write_text("user\npass word\n")
    assert read_auth_file(str(f)) == ("user", "pass word")
    f.write_text("only-a-user\n")
    with pytest.raises(ConfigError):
        read_auth_file(str(f))


def test_runner_only_with_a_smarthost(tmp_path):
    reactor = MemoryReactorClock()
    service = makeService(parse("--data", str(tmp_path / "a"), "--no-first-account"), reactor)
    service.privilegedStartService()
    try:
        assert service.outbox is None
    finally:
        service.store.close()
    service = makeService(parse("--data", str(tmp_path / "b"), "--no-first-account",
                                "--smarthost", "tcp:127.0.0.1:25"), reactor)
    service.privilegedStartService()
    try:
        assert service.outbox is not None and service.getServiceNamed("outbox") is service.outbox
        assert service.outbox.config.smarthost == "tcp:127.0.0.1:25"
    finally:
        service.store.close()
