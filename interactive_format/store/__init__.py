"""Conversations on disk: the SQLite store (store), its schema (migrations), turns as table rows (rows) and the
export/import format (transfer)."""
