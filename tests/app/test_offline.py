"""Panel's CDN stylesheets become inline ones (notebooks stay offline after the first render)."""

from __future__ import annotations

import panel as pn
from bokeh.models import ImportedStyleSheet, InlineStyleSheet
from panel.io.resources import set_resource_mode

from workbench.app.offline import CDN_PREFIX, PANEL_DIST, inline_cdn_stylesheets, keep_offline


def test_a_cdn_link_becomes_the_installed_stylesheet_inline() -> None:
    url = f"{CDN_PREFIX}{pn.__version__}/dist/css/loading.css?v={pn.__version__}"
    local = ImportedStyleSheet(url="static/extensions/panel/css/loading.css")
    sheets = inline_cdn_stylesheets([ImportedStyleSheet(url=url), local, ":host { color: red; }"])
    assert isinstance(sheets[0], InlineStyleSheet)
    assert sheets[0].css == (PANEL_DIST / "css" / "loading.css").read_text(encoding="utf-8")
    assert sheets[1:] == [local, ":host { color: red; }"]  # not the CDN: left as they are


def test_a_cdn_link_without_an_installed_copy_is_left_alone() -> None:
    missing = ImportedStyleSheet(url=f"{CDN_PREFIX}{pn.__version__}/dist/css/no-such-file.css")
    assert inline_cdn_stylesheets([missing]) == [missing]


def test_a_hooked_pane_sends_no_cdn_link_when_its_stylesheets_change() -> None:
    # In a notebook Panel resolves its stylesheets to its CDN: the same mode here.
    with set_resource_mode("cdn"):
        plain = pn.pane.HTML("x")._process_param_change({"stylesheets": [":host { color: red; }"]})
        hooked = keep_offline(pn.pane.HTML("x"))._process_param_change(
            {"stylesheets": [":host { color: red; }"]}
        )

    def cdn_links(properties: dict) -> list[str]:
        return [
            s.url
            for s in properties["stylesheets"]
            if isinstance(s, ImportedStyleSheet) and s.url.startswith(CDN_PREFIX)
        ]

    assert cdn_links(plain)  # what a notebook page would fetch from cdn.holoviz.org
    assert cdn_links(hooked) == []
    assert len(hooked["stylesheets"]) == len(plain["stylesheets"])  # the same sheets, inline
