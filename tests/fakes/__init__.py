"""Fakes of outside services, run on loopback for the real client libraries to talk to."""
