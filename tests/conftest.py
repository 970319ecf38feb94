"""Shared fixtures; the Kafka broker fixtures live in tests/kafka_fixtures.py."""

pytest_plugins = ["tests.kafka_fixtures"]
