"""The message store every service reads: conversations, messages in per-conversation order,
read positions and sync. Every hot-path read and write is an `_id` lookup (see
docs/message-store.md), so a user's cost never grows with other users' data."""
