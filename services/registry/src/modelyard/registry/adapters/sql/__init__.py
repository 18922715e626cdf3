"""The registry's SQL store (SQLAlchemy 2 Core; SQLite embedded, PostgreSQL in production) and its migrations."""
