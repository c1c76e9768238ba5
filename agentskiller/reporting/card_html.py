"""The dataset card (markdown) as a standalone HTML page, for Snakemake's report (it shows .html inline).

Rendered with Python-Markdown (``tables`` extension). The card quotes text that came from a
model (env names, quarantine reasons), so raw HTML is not passed through: the raw-HTML block
and inline processors are removed, and so are links and images (a card has none; a
``javascript:`` URL in a reason must not become a link). What is left is escaped text.
"""

from __future__ import annotations

import html

import markdown

#: Python-Markdown processors that would let markup from the text through
_UNSAFE_INLINE = (
    "html",
    "link",
    "reference",
    "image_link",
    "image_reference",
    "short_reference",
    "short_image_ref",
    "autolink",
    "automail",
)

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; line-height: 1.45; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
th { background: #f2f2f2; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def render_markdown(text: str) -> str:
    """Markdown to an HTML fragment, with raw HTML, links and images disabled."""
    md = markdown.Markdown(extensions=["tables"], output_format="html")
    md.preprocessors.deregister("html_block")
    for name in _UNSAFE_INLINE:
        if name in md.inlinePatterns:
            md.inlinePatterns.deregister(name)
    return md.convert(text)


def card_page(text: str, title: str = "Dataset card") -> str:
    """A complete HTML page for the card."""
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{render_markdown(text)}\n</body></html>\n"
    )
