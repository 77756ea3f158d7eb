"""The engine: clock, runtime, enrollment upkeep, scheduler loop, dramatiq actors."""
