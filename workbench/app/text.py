"""Text from flow files shown as text: every name, prompt and description is HTML-escaped.

Flow files come from anywhere; a ``<script>`` in a description must show as characters,
never run. Panel's Markdown and HTML panes render markup, so the app only ever hands
them text that went through ``html.escape`` here.
"""

from __future__ import annotations

import html
import weakref
from typing import Any

import panel as pn

__all__ = ["message", "plural", "text_html", "text_pane"]

_STYLES = {
    "info": "color:#1f2937;background:#eef2ff;border:1px solid #c7d2fe",
    "ok": "color:#14532d;background:#dcfce7;border:1px solid #86efac",
    "error": "color:#7f1d1d;background:#fee2e2;border:1px solid #fca5a5",
    "warn": "color:#78350f;background:#fef3c7;border:1px solid #fcd34d",  # ran, but not as asked
    "plain": "color:#1f2937",
    "muted": "color:#334155;background:#f1f5f9;border:1px solid #cbd5e1",  # e.g. a cancelled run
}


# The style each text pane was made with, so ``message`` keeps it (panes are not ours to extend).
_STYLE_OF: weakref.WeakKeyDictionary[pn.pane.HTML, tuple[str, bool]] = weakref.WeakKeyDictionary()


def text_html(text: str, style: str = "plain", pre: bool = False) -> str:
    """``text`` escaped in a styled block (for panes that show several blocks at once)."""
    tag = "pre" if pre else "div"
    css = _STYLES.get(style, _STYLES["plain"])
    extra = "white-space:pre-wrap;font-family:monospace;margin:0;" if pre else ""
    return (
        f'<{tag} class="wb-text wb-{style}" style="{css};{extra}padding:4px 8px;border-radius:4px">'
        f"{html.escape(text)}</{tag}>"
    )


def text_pane(text: str = "", *, style: str = "plain", pre: bool = False, **params: Any) -> pn.pane.HTML:
    """An HTML pane showing ``text`` escaped (``pre`` keeps line breaks and columns)."""
    pane = pn.pane.HTML(text_html(text, style, pre) if text else "", **params)
    _STYLE_OF[pane] = (style, pre)
    return pane


def message(pane: pn.pane.HTML, text: str, style: str | None = None) -> None:
    """Replace the text of a pane made by ``text_pane`` (empty text clears it)."""
    old_style, pre = _STYLE_OF.get(pane, ("plain", False))
    pane.object = text_html(text, style or old_style, pre) if text else ""


def plural(n: int, word: str) -> str:
    """``1 call``, ``2 calls``, ``1,000 calls``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"
