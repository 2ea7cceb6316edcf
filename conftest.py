"""Repository-root conftest: registers the harness plugin for every test run."""

pytest_plugins = ["harness.pytest_plugin"]
