"""Sharing and exports of a page: its datasets as one netCDF file, its plots as one PNG, and
the link to exactly this view — the "Share & export" box of every page's sidebar. The browser
side of the PNG and copy-link buttons lives in ``assets/js``."""

from __future__ import annotations

import io
import time
from functools import lru_cache
from pathlib import Path

import panel as pn
import xarray as xr

import engine

from .. import ncio

JS_DIR = Path(__file__).resolve().parents[2] / "assets" / "js"


@lru_cache(maxsize=None)
def browser_code(name: str) -> str:
    """The JavaScript of ``assets/js/<name>.js`` (read once per process)."""
    return (JS_DIR / f"{name}.js").read_text(encoding="utf-8")


def netcdf_export(groups: dict[str, xr.Dataset], link: str) -> bytes:
    """``groups`` as one netCDF file, with the link that reproduces them, the engine version and
    the time in every group's attrs (a page's download, and the class mode's)."""
    groups = {name: ds for name, ds in groups.items() if ds is not None}
    stamp = dict(sgd_atlas_link=link, sgd_atlas_engine=engine.engine_version(),
                 sgd_atlas_exported=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if not groups:
        groups = {"empty": xr.Dataset(attrs={"note": "nothing was computed yet"})}
    return ncio.to_bytes({k: ds.assign_attrs(**stamp) for k, ds in groups.items()})


class Sharing:
    """What a :class:`~app.pages.base.Page` offers for sharing: ``export_datasets`` (pages
    override it), the netCDF bytes, the current link and the sidebar box (the page's ``slug``
    names the files; its ``exports`` says whether there is anything to download)."""

    def export_datasets(self) -> dict[str, xr.Dataset]:
        """What the page shows now, as ``{netCDF group: Dataset}`` (empty before any result)."""
        return {}

    def export_bytes(self) -> io.BytesIO:
        """The page's datasets as one netCDF file (groups), with the link that reproduces them
        and the engine version in every group's attrs."""
        return io.BytesIO(netcdf_export(self.export_datasets(), self.current_link()))

    def current_link(self) -> str:
        """The page's address as the browser shows it, whole (scheme, host, path and query),
        so a file keeps a link that opens anywhere; without a browser, the query alone."""
        loc = pn.state.location
        if loc is None:
            return f"?page={self.slug}"
        origin = f"{loc.protocol}//{loc.hostname}" if loc.protocol and loc.hostname else ""
        if origin and loc.port:
            origin += f":{loc.port}"
        return f"{origin}{loc.pathname or ''}{loc.search or ''}"

    def share_panel(self) -> pn.viewable.Viewable:
        """Download the data (netCDF) and the plots (PNG); copy the link to this exact view."""
        if not self.exports:
            return pn.Column(visible=False)
        name = f"sgd-atlas-{self.slug}"
        self._download = pn.widgets.FileDownload(
            callback=self.export_bytes, filename=f"{name}.nc", label="⬇ Data (netCDF)",
            button_type="primary", button_style="outline", embed=False,
            description="Every dataset on this page as netCDF groups, with the link and the "
                        "engine version in their attributes.")
        png = pn.widgets.Button(label="⬇ Plots (PNG)", button_type="primary",
                                button_style="outline", css_classes=["atlas-png"],
                                description="The plots as shown, in one PNG.")
        png.js_on_click(args={"name": name}, code=browser_code("png-export"))
        copy = pn.widgets.Button(label="Copy link", button_type="primary", button_style="outline",
                                 css_classes=["atlas-copy-link"],
                                 description="The address of exactly this view, for a student "
                                             "or a paper.")
        copy.js_on_click(args={"label": "Copy link"}, code=browser_code("copy-link"))
        return pn.Column(pn.pane.Markdown("#### Share & export"), self._download,
                         pn.Row(png, copy), sizing_mode="stretch_width")

