"""Storage: SQLAlchemy tables, sessions, Alembic migrations and repository functions.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL (psycopg 3) is the
production store. Everything here works on both.

The repository functions, one module per entity (participants, enrollments,
occurrences, deliveries, invitations, outbox, checkins, feeds, summaries, app_state),
are every read and write of Tend's tables, on a given connection. Each runs inside the
caller's transaction, so that a caller can make several of them one atomic step. State
changes are conditional updates: they say which state they move from, and do nothing
(reporting so) when someone else moved it first.
"""
