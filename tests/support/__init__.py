"""What the tests share: the plan helpers and test templates (plans), the engine's fixtures
and harness (engine), throwaway PostgreSQL and Redis (services), the one test clock
(clock), fakes of Twilio and of an SMTP server, the dashboard's seeded cohort, and the
helper processes (procs)."""
