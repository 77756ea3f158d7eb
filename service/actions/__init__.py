"""What participants did: replies, check-ins and adherence, shared by the web app, the
engine and the command line. Above the runtime, below the web app and the engine."""
