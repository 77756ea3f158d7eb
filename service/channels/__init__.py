"""Channels: one small interface to send a rendered message and get a receipt."""
