import pytest

from ticketing.settings import ConfigError, Settings, parse_bootstrap_servers


def test_defaults_point_at_local_services() -> None:
    settings = Settings.from_env({})

    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.database.host == "127.0.0.1"
    assert settings.database.port == 5432
    assert settings.topic("tickets") == "helpdesk.tickets"


@pytest.mark.parametrize("value", ["nohost", "127.0.0.1:", "127.0.0.1:99999", "a:1,,b:2", "host:port"])
def test_malformed_bootstrap_servers_names_variable(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": value})

    message = str(raised.value)
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
    assert repr(value) in message
    assert "for example KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092" in message


def test_bootstrap_servers_accept_list_and_ipv6() -> None:
    assert parse_bootstrap_servers("a:1,[::1]:9092") == [("a", 1), ("::1", 9092)]


@pytest.mark.parametrize(
    "value",
    ["mysql://u:p@h/db", "postgresql://u:p@h:notaport/db", "postgresql://u:p@h:5432/", "not a url"],
)
def test_malformed_database_url_names_variable(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"DATABASE_URL": value})

    assert "DATABASE_URL" in str(raised.value)
    assert "postgresql://helpdesk:helpdesk@127.0.0.1:5432/helpdesk" in str(raised.value)


def test_eventsourcing_env_comes_from_database_url() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://alice:s%40cret@db.example:6543/desk", "EVENT_STORE_SCHEMA": "store_a"}
    )

    env = settings.eventsourcing_env()

    assert env["POSTGRES_USER"] == "alice"
    assert env["POSTGRES_PASSWORD"] == "s@cret"
    assert env["POSTGRES_HOST"] == "db.example"
    assert env["POSTGRES_PORT"] == "6543"
    assert env["POSTGRES_DBNAME"] == "desk"
    assert env["POSTGRES_SCHEMA"] == "store_a"


@pytest.mark.parametrize(
    ("name", "value"),
    [("TOPIC_PARTITIONS", "0"), ("TOPIC_PARTITIONS", "six"), ("EVENT_STORE_SCHEMA", "Drop Table"),
     ("TOPIC_PREFIX", "bad prefix/"), ("CONNECT_TIMEOUT_SECONDS", "-1")],
)
def test_other_malformed_values_name_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize("value", ["1001", "100000"])
def test_topic_partitions_above_maximum_rejected(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"TOPIC_PARTITIONS": value})

    message = str(raised.value)
    assert f"TOPIC_PARTITIONS={value!r}" in message
    assert "from 1 to 1000" in message


def test_topic_partitions_maximum_accepted() -> None:
    assert Settings.from_env({"TOPIC_PARTITIONS": "1000"}).topic_partitions == 1000
