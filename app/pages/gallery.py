"""The presets gallery: the papers' figures and lesson prompts of ``assets/presets.yaml``, each
opening the right page with the right parameters — and the same view for a class, in the class
mode (:mod:`app.classmode`) with the advanced controls hidden."""

from __future__ import annotations

import html
import io
from functools import lru_cache
from urllib.parse import urlencode

import panel as pn

from ..presets import ASSETS, load_presets
from .base import Page

#: page → (title, papers and figures it reproduces, screenshot)
SECTIONS = {
    "trajectories": ("Live trajectories", "paper 000 §3.1; paper 001", "trajectories"),
    "stability": ("Stability maps & pullback attractors", "paper 000 Figs. 3–4", "stability"),
    "phases": ("Phase diagrams", "paper 002 Prop. 1, Figs. 2, 8, 9", "phases"),
    "escape": ("Escape times", "paper 000 Fig. 5; paper 003 Fig. 3", "escape"),
    "overfit": ("Overfitting under label noise", "paper 001 Fig. 3", "overfit"),
}


@lru_cache(maxsize=None)
def thumbnail(name: str) -> bytes | None:
    """A 480-px JPEG of ``assets/screenshot-<name>.png`` (made once per process)."""
    path = ASSETS / f"screenshot-{name}.png"
    if not path.exists():
        return None
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((480, 480))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80, optimize=True)
        return buf.getvalue()


def preset_link(page: str, preset_id: str, **extra: str) -> str:
    return "?" + urlencode({"page": page, "preset": preset_id, **extra})


INTRO = ("## Presets gallery\n\nEach card opens a page with the parameters of a figure of "
         "the papers or of a lesson, and says what to look for. **Open** gives the full "
         "page, built for you; **class link** opens the same view in the class mode, built "
         "once and served to a whole room, with the advanced controls (seeds, resolutions, "
         "step caps) hidden — hand it to students. Add `&lock=sigma2,lr` to a link to fix "
         "those controls as well.")
CARD_CSS = """.atlas-card { border: 1px solid #d5dde6; border-radius: 8px;
    padding: 10px 12px; height: 100%; background: #fbfcfe; }
  .atlas-card-title { font-weight: 600; color: #1f3b57; margin-bottom: 4px; }
  .atlas-card p { font-size: 0.9em; color: #333; }
  .atlas-card a { display: inline-block; padding: 3px 10px; border-radius: 5px;
    text-decoration: none; margin-right: 6px; }
  .atlas-open { background: #1f3b57; color: white; }
  .atlas-class { border: 1px solid #1f3b57; color: #1f3b57; }"""


def card_html(page: str, preset: dict, panel_page: str = "") -> str:
    """A preset's card: its title, its prompt, **Open** (the full page: ``panel_page`` + the
    link, "" from the Panel pages, "app" from the class mode) and **class link** (the class
    mode, ``/class`` beside ``/app``, built once and served to the whole room)."""
    title = html.escape(preset["title"])
    prompt = html.escape(preset["prompt"])
    open_link = html.escape(panel_page + preset_link(page, preset["id"]))
    class_link = html.escape("class" + preset_link(page, preset["id"], hide="advanced"))
    return (f"<div class='atlas-card' data-preset='{html.escape(preset['id'])}'>"
            f"<div class='atlas-card-title'>{title}</div><p>{prompt}</p>"
            f"<a class='atlas-open' href='{open_link}'>Open</a> "
            f"<a class='atlas-class' href='{class_link}'>class link</a></div>")


class GalleryPage(Page):
    """Cards of every preset, grouped by page, with "open" and "class link" buttons."""

    slug = "gallery"
    exports = False

    def __panel__(self) -> pn.viewable.Viewable:
        sections = [pn.pane.Markdown(INTRO, sizing_mode="stretch_width")]
        presets = load_presets()
        for page, (title, papers, shot) in SECTIONS.items():
            cards = [self._card(page, p) for p in presets.get(page, [])]
            if not cards:
                continue
            image = thumbnail(shot)
            head = pn.pane.Markdown(f"### {title}\n*{papers}* · [open the page](?page={page})",
                                    margin=(10, 10, 0, 10))
            body = pn.Column(head, pn.FlexBox(*cards, sizing_mode="stretch_width"),
                             sizing_mode="stretch_width")
            thumb = ([pn.pane.JPG(image, width=300, alt_text=f"{title} page", margin=(18, 10))]
                     if image is not None else [])
            sections.append(pn.Row(*thumb, body, sizing_mode="stretch_width",
                                   styles={"border-top": "1px solid #e3e8ee"}))
        return pn.Column(*sections, sizing_mode="stretch_width", max_width=1300)

    @staticmethod
    def _card(page: str, preset: dict) -> pn.viewable.Viewable:
        return pn.pane.HTML(card_html(page, preset), width=330, margin=6,
                            stylesheets=[CARD_CSS])


def gallery_html() -> str:
    """The gallery for the class mode's static page: the same cards, sections and thumbnails
    (``class/thumbnail/<name>.jpg``), its links to the full pages through ``app``."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    out = [md.render(INTRO)]
    presets = load_presets()
    for page, (title, papers, shot) in SECTIONS.items():
        cards = "".join(card_html(page, p, panel_page="app") for p in presets.get(page, []))
        if not cards:
            continue
        thumb = (f"<img class='thumb' src='class/thumbnail/{shot}.jpg' width='300' "
                 f"alt='{html.escape(title)} page'>" if thumbnail(shot) is not None else "")
        out.append(f"<section class='gallery-section'>{thumb}<div class='gallery-body'>"
                   f"<h3>{html.escape(title)}</h3><p><i>{html.escape(papers)}</i> · "
                   f"<a href='app?page={page}'>open the page</a> · "
                   f"<a href='class?page={page}'>class mode</a></p>"
                   f"<div class='cards'>{cards}</div></div></section>")
    return "\n".join(out)
