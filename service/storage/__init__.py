"""Storage: SQLAlchemy tables, sessions, Alembic migrations and repository functions.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL (psycopg 3) is the
production store. Everything here works on both.
"""
