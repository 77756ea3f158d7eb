"""Tests on a database (SQLite, a throwaway PostgreSQL or Redis), the web app through
TestClient, and the channels' real clients against local fakes."""
