"""The view of a computation (:class:`app.compute.Computation`): a progress bar, an estimate of
the time left, a status line and a cancel button, with its results shown as they arrive."""

from __future__ import annotations

import html

import panel as pn

from ..compute import Follower, Progress
from ..jobs import session_scheduler


class ProgressView:
    """A computation's progress bar, status line and cancel button (:attr:`controls`), and its
    results shown as they arrive.

    ``run(tasks)`` follows the shared computation of ``tasks`` (:func:`app.compute.follow`:
    another session asking for the same tasks shares it, and its progress) and calls
    ``on_results(list_so_far)`` on the session's loop whenever that list changes; a new ``run``
    supersedes the old one (latest wins). With ``streaming=True`` a streaming engine's growing
    result is shown as the last entry. When all are done the status carries
    ``<span id=done_id>`` (browser tests wait for it). ``unit`` names the tasks ("σ² values");
    a lone task's progress is given in per cent.

    A new run keeps the previous results on screen, with ``dim`` (the layout holding the
    page's plots) at :attr:`DIMMED` opacity and "recomputing…" in the status, until its first
    result (or streamed partial result) replaces them at full opacity. Once there is something
    to go on the status estimates the time left (:meth:`time_left`). Cancel leaves the
    computation (it stops if nobody else follows it). A failed run says so in the status — a
    sentence, never the traceback, which the server log keeps — and leaves whatever was shown.
    """

    #: opacity of the previous results while a new run has not shown anything yet
    DIMMED = 0.4
    def __init__(self, on_results, unit: str, done_id: str,
                 dim: pn.viewable.Viewable | None = None):
        self._on_results, self._unit, self._done_id, self.dim = on_results, unit, done_id, dim
        self._shown: list = []  # the list on_results was last called with
        self._stale = False  # ``_shown`` belongs to the run before the current one
        self._follower = Follower(session_scheduler(pn.state.curdoc), self._progress)
        self._streaming = False
        self.bar = pn.indicators.Progress(value=0, max=100, width=220, visible=False,
                                          align="center")
        self.status = pn.pane.HTML("", styles={"flex": "1 1 240px"}, align="center")
        self.cancel_button = pn.widgets.Button(label="Cancel", button_type="warning", width=90,
                                               disabled=True, align="center")
        self.cancel_button.on_click(self.cancel)
        # wraps: on a phone the status goes below the bar instead of a column of single words
        self.controls = pn.FlexBox(self.bar, self.cancel_button, self.status,
                                   align_items="center", sizing_mode="stretch_width")

    @property
    def stale(self) -> bool:
        """Whether the results shown belong to the run before the current one (e.g. not to be
        exported with the current link)."""
        return self._stale

    def run(self, tasks: list, streaming: bool = False) -> None:
        self._stale = bool(self._shown)
        self._streaming = streaming
        self.bar.value, self.bar.visible, self.cancel_button.disabled = 0, True, False
        self.status.object = self._with_stale("computing…", "")
        self._set_stale(self._stale)  # after the status: the note comes with the dimming
        self._follower.follow(tasks, self._done, self._error)

    @staticmethod
    def time_left(seconds: float) -> str:
        """``seconds`` as a round figure: "about 7 s", "about 40 s", "about 2 min"."""
        s = round(seconds) if seconds < 10 else 5 * round(seconds / 5)
        return f"about {max(s, 1)} s" if s < 60 else f"about {round(seconds / 60)} min"

    def _show(self, results: list) -> None:
        """Pass ``results`` to the page (unless it shows those already), at full opacity."""
        if [id(ds) for ds in results] != [id(ds) for ds in self._shown]:
            self._on_results(results)
        self._shown = results
        self._set_stale(False)

    def _set_stale(self, stale: bool) -> None:
        self._stale = stale
        if self.dim is not None:
            opacity = str(self.DIMMED) if stale else "1"
            if (self.dim.styles or {}).get("opacity") != opacity:
                self.dim.styles = {**(self.dim.styles or {}), "opacity": opacity}

    def _with_stale(self, text: str, stale_text: str | None = None) -> str:
        """``text``, or ``stale_text`` (default ``text``) saying that the plots still show the
        previous run."""
        if not self._stale:
            return text
        text = text if stale_text is None else stale_text
        note = "the dimmed plots show the previous result"
        return f"recomputing… {text} · {note}" if text else f"recomputing… {note}"

    def _progress(self, p: Progress) -> None:
        results = list(p.results) + ([p.partial] if self._streaming and p.partial is not None
                                     else [])
        if results:  # the new run's first result replaces the previous run's at once
            self._show(results)
        self.bar.value = int(100 * p.done / p.total)
        text = (f"{100 * p.done:.0f} % done" if p.total == 1 else
                f"{int(p.done)} of {p.total} {self._unit} done")
        if p.left is not None:
            text += f" · {self.time_left(p.left)} left"
        self.status.object = self._with_stale(text)

    def _done(self, results):
        self._show(results)
        self.bar.visible, self.cancel_button.disabled = False, True
        self.status.object = (f'<span id="{self._done_id}">complete: {len(results)} '
                              f'{self._unit}</span>')

    def cancel(self, event=None) -> None:
        self._follower.cancel()
        self.bar.visible, self.cancel_button.disabled = False, True
        self.status.object = ("Cancelled; the dimmed plots show the previous result. Change a "
                              "parameter to compute again." if self._stale else
                              "Cancelled; change a parameter to compute again.")

    def _error(self, exc):
        self.bar.visible, self.cancel_button.disabled = False, True
        # engine functions raise ValueError with a sentence a student can act on; anything
        # else is a bug whose details belong in the server log (app.compute logs the traceback)
        text = "The computation failed."
        if isinstance(exc, ValueError) and str(exc).strip():
            reason = str(exc).strip().splitlines()[0][:300]
            text = f"The computation failed: {reason}" + ("" if reason.endswith(".") else ".")
        if self._stale:
            text += " The dimmed plots show the previous result."
        elif self._shown:
            text += " The plots show what was computed before it failed."
        self.status.object = html.escape(f"{text} Change a parameter to retry.", quote=False)

    @property
    def running(self) -> bool:
        return self._follower.running

    @property
    def closed(self) -> bool:
        return self._follower.closed

    def close(self) -> None:
        self._follower.close()

