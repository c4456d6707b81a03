"""Keep the app offline in notebooks: Panel's own stylesheets inlined, never fetched from its CDN.

``pn.extension(inline=True)`` puts Panel's JavaScript and the first render's stylesheets
inside the notebook, but a later change of a component's ``stylesheets`` (the canvas restyles
itself for rail and run marks) makes Panel list its loading and theme stylesheets again as
links to its CDN, which an offline notebook cannot reach (the page then fetches
``cdn.holoviz.org``). ``keep_offline(view)`` turns those links into inline stylesheets read
from Panel's installed ``dist`` folder. Served by ``workbench serve`` nothing changes: the
links there point at the local server, not the CDN.
"""

from __future__ import annotations

import functools
import weakref
from pathlib import Path
from typing import Any

import panel as pn
from bokeh.models import ImportedStyleSheet, InlineStyleSheet
from bokeh.models.ui import UIElement
from panel.reactive import Reactive
from panel.viewable import Viewable

__all__ = ["inline_cdn_stylesheets", "keep_offline", "keep_tree_offline"]

PANEL_DIST = Path(pn.__file__).parent / "dist"
CDN_PREFIX = "https://cdn.holoviz.org/panel/"


# One model per document and url: a restyle sends a reference, not the CSS again (a Bokeh
# model belongs to one document, so sessions do not share them).
_SHEETS: weakref.WeakKeyDictionary[Any, dict[str, InlineStyleSheet]] = weakref.WeakKeyDictionary()


@functools.cache
def _css(url: str) -> str | None:
    """The text of the stylesheet at a Panel CDN ``url``, read from the installed copy."""
    if "/dist/" not in url:
        return None
    path = PANEL_DIST / url.split("/dist/", 1)[1].split("?")[0]
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _inline(url: str) -> InlineStyleSheet | None:
    css = _css(url)
    if css is None:
        return None
    doc = pn.state.curdoc
    if doc is None:
        return InlineStyleSheet(css=css)
    sheets = _SHEETS.setdefault(doc, {})
    if url not in sheets:
        sheets[url] = InlineStyleSheet(css=css)
    return sheets[url]


def inline_cdn_stylesheets(sheets: list[Any]) -> list[Any]:
    """``sheets`` with every link to Panel's CDN replaced by the same stylesheet inline."""
    out = []
    for sheet in sheets:
        url = sheet.url if isinstance(sheet, ImportedStyleSheet) else sheet if isinstance(sheet, str) else ""
        if url.startswith(CDN_PREFIX):
            sheet = _inline(url) or sheet
        out.append(sheet)
    return out


def keep_offline(view: Reactive) -> Reactive:
    """Make ``view``'s later stylesheet changes inline Panel's CDN stylesheets; returns ``view``.

    An instance hook, not a subclass: a Panel ESM component is drawn in the browser by the
    model its class registered (panel-reactflow's compiled bundle), which a subclass lacks.
    """
    process = view._process_param_change

    def inlined(params: dict[str, Any]) -> dict[str, Any]:
        properties = process(params)
        if "stylesheets" in properties:
            properties["stylesheets"] = inline_cdn_stylesheets(list(properties["stylesheets"]))
        return properties

    setattr(view, "_process_param_change", inlined)  # noqa: B010  (an instance hook, see above)
    return view


def keep_tree_offline(view: Viewable) -> Viewable:
    """Keep every part of ``view`` offline in a notebook, parts drawn later too; returns ``view``.

    Panel inlines its CDN stylesheets for the first render of a notebook output only. Later
    updates (a pane's new text, a tab opened for the first time, the canvas restyled) list
    them as CDN links again. A preprocessing hook of ``view`` (Panel runs the root's hooks
    on the first render and whenever a layout under it changes) gives every Panel object
    under it the ``keep_offline`` hook once and patches the models drawn so far.
    """
    hooked: weakref.WeakSet[Reactive] = weakref.WeakSet()

    def hook(_viewable: Viewable, root: Any, *_changed: Any) -> None:
        for part in view.select(Reactive):
            if isinstance(part, Reactive) and part not in hooked:
                keep_offline(part)
                hooked.add(part)
        for model in root.select({"type": UIElement}):
            sheets = inline_cdn_stylesheets(list(model.stylesheets))
            if sheets != list(model.stylesheets):
                model.stylesheets = sheets

    # The instance's own list (the class's list holds Panel's hooks for every object).
    setattr(view, "_preprocessing_hooks", [*view._preprocessing_hooks, hook])  # noqa: B010
    return view
