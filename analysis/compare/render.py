"""A document as one list of sections, rendered to Markdown and to self-contained HTML (figures inlined as
base64 PNGs): both renderings carry the same headings, paragraphs, bullets, table cells and captions."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame


@dataclass(frozen=True)
class Figure:
    file: str
    caption: str


Section = Heading | Paragraph | Bullets | Table | Figure


def _md_cell(v: object) -> str:
    return str(v).replace("|", "\\|")


def to_markdown(sections: list[Section]) -> str:
    out: list[str] = []
    for s in sections:
        if isinstance(s, Heading):
            out += ["#" * s.level + " " + s.text, ""]
        elif isinstance(s, Paragraph):
            out += [s.text, ""]
        elif isinstance(s, Bullets):
            out += [f"- {item}" for item in s.items] + [""]
        elif isinstance(s, Table):
            df = s.frame
            out.append("| " + " | ".join(_md_cell(c) for c in df.columns) + " |")
            out.append("| " + " | ".join("---" for _ in df.columns) + " |")
            out += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
            out.append("")
        else:
            out += [f"![{s.caption}]({s.file})", "", f"*{s.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


def to_html(sections: list[Section], title: str, folder: Path) -> str:
    e = html.escape
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        # compact headings and margins: the verdict, the design and the forest plot fit on one 1400×1000 screen
        "<style>body{font-family:sans-serif;font-size:15px;max-width:1200px;margin:auto;padding:0 1em}"
        "h1{font-size:1.6em;margin:.4em 0 .2em}h2{font-size:1.25em;margin:.9em 0 .3em}"
        "h3{font-size:1.05em;margin:.8em 0 .3em}p{margin:.4em 0}ul{margin:.3em 0;padding-left:1.4em}"
        "li{margin:.1em 0}figure{margin:.5em 0}"
        "table{border-collapse:collapse;font-size:13px;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        "img{max-width:100%}figcaption{font-style:italic;font-size:13px}</style></head><body>",
    ]
    for s in sections:
        if isinstance(s, Heading):
            out.append(f"<h{s.level}>{e(s.text)}</h{s.level}>")
        elif isinstance(s, Paragraph):
            out.append(f"<p>{e(s.text)}</p>")
        elif isinstance(s, Bullets):
            out += ["<ul>", *(f"<li>{e(item)}</li>" for item in s.items), "</ul>"]
        elif isinstance(s, Table):
            head = "".join(f"<th>{e(str(c))}</th>" for c in s.frame.columns)
            body = [
                "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>"
                for row in s.frame.itertuples(index=False)
            ]
            out += ["<table>", f"<thead><tr>{head}</tr></thead>", "<tbody>", *body, "</tbody></table>"]
        else:
            data = base64.b64encode((folder / s.file).read_bytes()).decode("ascii")
            out.append(
                f'<figure><img alt="{e(s.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(s.caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
