"""Root pytest configuration: command-line options and plugin wiring. Nothing heavy at import."""

import pipeline  # noqa: F401  (sets the Hugging Face offline variables before anything else)

pytest_plugins = [
    "fixtures.options",
    "fixtures.models",
    "fixtures.stages",
    "fixtures.readouts",
    "fixtures.scorecard",
    "fixtures.behaviour",
    "fixtures.preferences",
    "fixtures.progress",
    "fixtures.tiers",
]
