"""A teacher's link, ``?lock=…&hide=…``: controls fixed (and held on the state, so neither a
tampered browser nor a preset can move them) or hidden, with a note saying why."""

from __future__ import annotations

import html

import panel as pn
import param

from ..urlstate import teacher_fields


class TeacherLinks:
    """``apply_teacher`` for a :class:`~app.pages.base.Page` (which provides
    ``param_widgets``, ``advanced``, ``add_notice``, ``sidebar_panel``, ``lock_note`` and the
    ``_locked`` map that :meth:`Page.apply_values` honours)."""

    def apply_teacher(self, query: dict, extras: dict[str, pn.viewable.Viewable] | None = None) -> None:
        """``lock=a,b``: those controls are disabled and their values held; ``hide=…``: those
        controls are hidden — parameter names, ``advanced`` (the page's :attr:`advanced`), or
        the names of ``extras`` (e.g. ``nav``, ``presets``, ``share``)."""
        widgets = self.param_widgets()
        extras = dict(extras or {})
        if getattr(self, "_preset_select", None) is not None:
            extras.setdefault("presets", self._preset_select)
        lock, hide, notices = teacher_fields(query, widgets, self.advanced, extras)
        for text in notices:
            self.add_notice(text)
        locked = []
        for n in lock:
            for owner, widget in widgets[n]:
                if (id(owner), n) in self._locked:
                    continue
                widget.disabled = True
                widget.name = f"{widget.name} 🔒"
                self._hold(owner, n)
                locked.append(owner.param[n].label or n)
        if locked:  # a greyed-out control says why
            self.lock_note.object = ("🔒 **Fixed by your teacher's link:** "
                                     + ", ".join(html.escape(t) for t in dict.fromkeys(locked))
                                     + ".")
            self.lock_note.visible = True
        for name in hide:
            items = [w for _, w in widgets[name]] if name in widgets else [extras[name]]
            for item in items:
                item.visible = False
        self._hide_empty_sections()

    def _hide_empty_sections(self) -> None:
        """Hide a sidebar heading whose controls are all hidden (with ``hide=advanced``, the
        live page's "Start" and "Animation" headings stood over nothing)."""
        def shown(pane: pn.Param) -> bool:
            return any(w.visible for n, w in pane._widgets.items() if n != "name")

        for column in self.sidebar_panel().select(pn.Column):
            items = list(column.objects)
            for i, item in enumerate(items):
                if not isinstance(item, pn.Param) or shown(item):
                    continue
                item.visible = False
                heading = items[i - 1] if i else None
                if isinstance(heading, pn.pane.Markdown) and str(heading.object).startswith("#"):
                    heading.visible = False

    def _hold(self, owner: param.Parameterized, name: str) -> None:
        """Keep ``owner.name`` at its current value: a locked control cannot be moved from
        the browser (a disabled widget can still be sent values), nor by a preset (which
        :meth:`apply_values` skips)."""
        value = getattr(owner, name)
        self._locked[(id(owner), name)] = value

        def restore(event):
            if event.new != value:
                owner.param.update(**{name: value})
                self.add_notice(f"{owner.param[name].label or name} is fixed by this lesson's link.")

        owner.param.watch(restore, name)
