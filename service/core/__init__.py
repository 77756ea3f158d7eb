"""The pure core: plan model, expansion, rendering, SMS maths, iCalendar building.

Nothing here does I/O or reads a clock; `now` and anything loaded from disk are
parameters. Nothing here imports from the rest of `service`.
"""
