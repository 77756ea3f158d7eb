"""Server-rendered pages: the one Jinja2 environment of every page Tend serves.

Its templates are in service/web/templates: the check-in, unsubscribe and outbox pages
and the coach dashboard (templates/dashboard). It autoescapes, refuses undefined names,
and has the filters and globals the pages use: `pct`, `when`, `day`, and the SVG charts
of `web/charts.py`. These are Tend's own pages, not coaches' message templates (those
are `core.render`'s, sandboxed): they live with the code and are not sandboxed."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from service.web import charts
from service.web.dashboard_data import SPARK_LABELS

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates"), encoding="utf-8"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- formatting for the templates -------------------------------------------------------


def pct(rate: float | None) -> str:
    return "\u2014" if rate is None else f"{round(rate * 100)}%"


def when(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    """'Tue 3 Mar 09:00' in `zone` (UTC, said so, without one)."""
    if moment is None:
        return "\u2014"
    local = moment.astimezone(zone or UTC)
    suffix = "" if zone is not None else " UTC"
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}{suffix}"


def day(value: date) -> str:
    return f"{value:%a} {value.day} {value:%b %Y}"


ENV.filters["pct"] = pct
ENV.globals.update(
    when=when,
    day=day,
    sparkline=lambda rates, **kw: Markup(charts.sparkline(rates, SPARK_LABELS, **kw)),
    strength_bar=lambda value, **kw: Markup(charts.strength_bar(value, **kw)),
    heatmap=lambda cells, **kw: Markup(charts.heatmap(cells, **kw)),
    swatch=lambda state: Markup(charts.swatch(state)),
    states=charts.STATES,
)


@functools.cache
def zone_names() -> tuple[str, ...]:
    """The time zones a form offers (a datalist): every IANA name of a place, sorted."""
    return tuple(
        sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith("Etc/"))
    )


# Pages reached by a personal link: never cached, the token never sent on to another
# site, nothing loaded from elsewhere, forms posted only here.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def render(
    name: str,
    status_code: int = 200,
    *,
    headers: Mapping[str, str] | None = PRIVATE_HEADERS,
    **context: Any,
) -> HTMLResponse:
    """The template `name` rendered with `context`, as a page with `headers`."""
    html = ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
