"""Qt-free label store (SQLite)."""
