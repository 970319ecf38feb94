"""Shared fixtures; the real servers' fixtures live in tests/kafka_fixtures.py (Apache Kafka) and
tests/postgres_fixtures.py (PostgreSQL)."""

pytest_plugins = ["tests.kafka_fixtures", "tests.postgres_fixtures"]
