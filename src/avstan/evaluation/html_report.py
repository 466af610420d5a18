"""A self-contained HTML report: tables and pictures in one file that opens from disk.

Images are embedded as base64 data URIs and the style sheet is inline, so the file has no
external assets (it can be mailed or archived as is). A three-line inline script records
how many images the browser decoded (``data-images-loaded`` on ``<body>``), which the
tests read back from headless Chromium.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avstan.evaluation.tables import METRICS, flatten_row, row_targets
from avstan.io import write_report_file

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f2f2f2; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
p.note { color: #444; }
"""

IMAGE_COUNTER = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""


def results_table_html(rows: Sequence[dict[str, Any]], caption: str = "") -> str:
    """The Table 1 layout as an HTML table (same rows as ``format_results_table``)."""
    targets = row_targets(rows)
    head = "".join(f"<th>{html.escape(t.capitalize())} {m.upper()}</th>"
                   for t in targets for m in METRICS)
    body = []
    for row in rows:
        flat = flatten_row(row, targets)
        cells = [f"<td>{html.escape(str(flat['model']))}</td>"]
        for key in [f"{t}_{m}" for t in targets for m in METRICS] + ["attention_in_mask"]:
            value = flat[key]
            cells.append(f"<td>{'—' if value is None else f'{value:.3f}'}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption_html = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f"<table>{caption_html}<thead><tr><th>Model</th>{head}<th>Attention in mask</th>"
            f"</tr></thead><tbody>{''.join(body)}</tbody></table>")


def image_html(path: str | Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_html_report(path: str | Path, title: str,
                      sections: Sequence[tuple[str, Sequence[str]]]) -> Path:
    """Write ``sections`` — (heading, [HTML fragments]) — as one self-contained page."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, fragments in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.extend(fragments)
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts) + IMAGE_COUNTER + "</body></html>")
    return write_report_file(path, page.encode())


def paragraph(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"
