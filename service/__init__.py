"""Tend: turns coaches' practice plans into reminders people act on."""

__version__ = "0.1.0"
