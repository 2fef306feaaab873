"""Self-contained HTML pages: one file, inline CSS and plain JavaScript, no network, no framework.

Every page lstmkit writes (the walkthrough, exercises, run reports) goes through `page`. Text that comes
from a user (a prompt, a run folder's name, a label in a spec) goes through `esc` before it is placed in
the page, so `<script>` in a prompt shows as text and never runs. Pictures are embedded as PNG data URIs
(`png_img`), so the file can be mailed or opened offline.

Numbers are coloured on one diverging scale (`cell_style`): blue for negative, white for 0, red for
positive, saturating at |value| = `scale`.
"""

from __future__ import annotations

import base64
import html

BASE_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dde6; --paper: #ffffff; --band: #f4f6fa; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--band); margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.45rem; margin: .4rem 0 .2rem; }
h2 { font-size: 1.15rem; margin: 1.4rem 0 .5rem; }
p.lead { color: var(--muted); margin: 0 0 1rem; }
section.card { background: var(--paper); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem;
               margin: .8rem 0; }
table.grid { border-collapse: collapse; font: 13px/1.2 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
table.grid td { border: 1px solid #c9ced8; padding: 3px 6px; text-align: right; min-width: 2.6em; }
table.kv { border-collapse: collapse; }
table.kv td, table.kv th { border-bottom: 1px solid var(--line); padding: 4px 10px 4px 0; text-align: left;
                           vertical-align: top; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
img.figure { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.muted { color: var(--muted); }
"""


def esc(text: object) -> str:
    """Text made safe to place inside HTML (elements and quoted attributes)."""
    return html.escape(str(text), quote=True)


def png_img(data: bytes, alt: str, css_class: str = "figure") -> str:
    """An <img> holding the PNG itself (a data URI): the page needs no other file."""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img class="{css_class}" alt="{esc(alt)}" src="data:image/png;base64,{encoded}">'


def cell_style(value: float, scale: float) -> str:
    """A background colour for `value` on a blue-white-red scale saturating at |value| = scale."""
    t = 0.0 if scale <= 0 else max(-1.0, min(1.0, float(value) / scale))
    if t >= 0:  # white -> red (214, 39, 40)
        r, g, b = 255 - round(41 * t), 255 - round(216 * t), 255 - round(215 * t)
    else:  # white -> blue (31, 119, 180)
        r, g, b = 255 + round(224 * t), 255 + round(136 * t), 255 + round(75 * t)
    ink = "#fff" if abs(t) > 0.6 else "#1d2330"
    return f"background:rgb({r},{g},{b});color:{ink}"


def page(title: str, body: str, *, css: str = "", script: str = "") -> str:
    """A whole HTML document: `title` is escaped here; `body` is HTML the caller built with `esc`."""
    js = f"<script>\n{script}\n</script>\n" if script else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{BASE_CSS}{css}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n{js}</body>\n</html>\n"
    )
