"""Server-rendered pages: Jinja2 templates in service/web/templates, autoescaped.

These are Tend's own pages (check-in, later the dashboard), not coaches' message
templates: they live with the code and are not sandboxed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates"), encoding="utf-8"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
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


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=PRIVATE_HEADERS)
