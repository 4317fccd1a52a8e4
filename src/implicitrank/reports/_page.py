"""What every report page shares: the Jinja2 environment, embedded images, number formatting, atomic writing.

A page is one self-contained HTML file: images are PNG data URIs, styles inline, no external resources, and a small
inline script only to sort tables.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import math
from pathlib import Path
from typing import Any

from . import REPORT


def environment():
    """The Jinja2 environment of the package's templates (``implicitrank/reports/templates``), autoescaping HTML."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("implicitrank.reports", "templates"),
                             autoescape=jinja2.select_autoescape(("html",)), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["num"] = fmt
    return env


def render(template: str, out_dir: Path, **context: Any) -> Path:
    """Render ``template`` with ``context`` into ``out_dir/report.html`` (atomically; a report is a view of the
    directory, redrawn from what is recorded, so a newer one replaces the older)."""
    from .. import __version__

    generated = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    html = environment().get_template(template).render(version=__version__, generated=generated, **context)
    from .. import results

    path = Path(out_dir) / REPORT
    results.atomic_write(path, lambda h: h.write(html.encode()))
    return path


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_uri(fig, dpi: int = 100) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    from ..plots import save

    buffer = io.BytesIO()
    save(fig, buffer, dpi=dpi)
    return png_uri(buffer.getvalue())


def file_figure(path: Path, name: str | None = None) -> dict:
    """An image file of a directory as {name, uri}; an unreadable or empty file as {name, error}. ``name`` is what
    the page calls it (default: the file's name)."""
    name = path.name if name is None else name
    try:
        data = path.read_bytes()
    except OSError as err:
        return {"name": name, "uri": None, "error": f"could not read it: {err}"}
    if not data.startswith(b"\x89PNG"):
        return {"name": name, "uri": None, "error": "not a PNG image (empty or damaged)"}
    return {"name": name, "uri": png_uri(data), "error": None}


def fmt(value: Any, digits: int = 4) -> str:
    """A value for a table cell: floats in ``digits`` significant digits, lists element-wise, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v, digits) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def sort_key(value: Any) -> str:
    """A cell's ``data-value`` for sorting: numbers as their repr, everything else as its text ('' sorts last)."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, float)):
        return repr(float(value)) if math.isfinite(value) else ""
    return fmt(value)


def read_json_or_none(path: Path) -> tuple[Any, str | None]:
    """(the JSON of ``path``, None), or (None, why it could not be read)."""
    from .. import results

    if not path.is_file():
        return None, f"no {path.name}"
    try:
        return results.read_json(path), None
    except (OSError, ValueError) as err:
        return None, f"{path.name} could not be read: {err}"


def seconds_between(started: str | None, ended: str | None) -> float | None:
    """Seconds between two ISO times, or None when either is missing or unreadable."""
    try:
        return (datetime.datetime.fromisoformat(ended) - datetime.datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def cell(value: Any, text: str | None = None, cls: str | None = None, href: str | None = None) -> dict:
    """A table cell: the shown ``text`` (default: ``fmt(value)``), its sort value, CSS class and link."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    classes = " ".join(c for c in (cls, "num" if numeric else None) if c)
    return {"text": fmt(value) if text is None else text, "sort": sort_key(value), "cls": classes or None,
            "href": href}


def table(table_id: str, columns: list[str], rows: list[list[dict]], sortable: bool = True) -> dict:
    return {"id": table_id, "columns": columns, "rows": rows, "sortable": sortable}


def css_class(status: str) -> str:
    """``not run`` -> ``not-run``: a status as the CSS class that colours it."""
    return status.replace(" ", "-").replace("_", "-")
