"""Channel tests: the real clients against local stand-ins (a fake of Twilio's API, Redis)."""
