"""`BadInput`: the one error type for input a user can fix.

Its message is one sentence naming the bad value, what was expected and how to fix it. The CLI
prints it without a traceback (exit status 2) and the pytest options turn it into a usage
error, so nothing that raises it may leave anything behind in the artifact cache.
"""

from __future__ import annotations


class BadInput(ValueError):
    """Input the user can fix: the message names the value, what was expected and the fix."""
