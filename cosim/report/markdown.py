"""The HTML rendering of the `nmpu run` report."""
from __future__ import annotations

import html
import re
from typing import Callable


def markdown_body(md: str, src: Callable[[str], str] | None = None) -> str:
    """The small Markdown subset the report uses (headings, tables, images, code, lists, paragraphs) as HTML
    elements; ``src`` maps an image's file name to its address (default: the name)."""
    out: list[str] = []
    table: list[str] = []
    code = False

    def image(m: re.Match) -> str:
        return f'<img alt="{m.group(1)}" src="{html.escape(src(html.unescape(m.group(2))) if src else m.group(2))}" ' \
               'style="max-width:100%">'

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", image, s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)

    def flush_table() -> None:
        if not table:
            return
        rows = [r for r in table if not re.fullmatch(r"\|[\s:|-]+\|", r)]
        out.append("<table>")
        for i, r in enumerate(rows):
            cells = [c.strip() for c in r.strip("|").split("|")]
            tag = "th" if i == 0 else "td"
            out.append("<tr>" + "".join(f"<{tag}>{inline(c)}</{tag}>" for c in cells) + "</tr>")
        out.append("</table>")
        table.clear()

    for line in md.splitlines():
        if line.startswith("```"):
            flush_table()
            out.append("</pre>" if code else "<pre>")
            code = not code
            continue
        if code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        m = re.match(r"(#+) (.*)", line)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
        elif line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush_table()
    return "\n".join(out)


def markdown_to_html(md: str, title: str) -> str:
    """A whole HTML page of the Markdown (:func:`markdown_body`)."""
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
             "text-align:right}pre{background:#f4f4f4;padding:.5em;overflow:auto}code{background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + markdown_body(md) + "\n</body></html>\n")
