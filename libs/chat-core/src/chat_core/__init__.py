"""Code every chat service shares: settings, events, auth, broker and database access."""

from importlib.metadata import version

# The one version of every package, API document and the changelog's latest entry
# (tests/unit/deploy/test_versions.py holds them to it).
VERSION = version("chat-core")
