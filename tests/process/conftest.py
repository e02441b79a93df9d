from tests.process.harness import node_factory  # noqa: F401 - a fixture, used by name
