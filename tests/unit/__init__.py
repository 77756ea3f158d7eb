"""Pure, fast tests: no database, no network, no subprocess."""
