"""What SGD Atlas is for, the model and its symbols, and the presets as links."""

from __future__ import annotations

import panel as pn

from engine import engine_version

from .base import Page

TEXT = r"""
## What this is

SGD Atlas shows where stochastic gradient descent on a tiny network **collapses onto a saddle,
degenerates onto a symmetric subspace, or escapes** — live, from the equations of the papers,
with every number reproducible from the link in your address bar.

## The model (paper 000, eqs. 4–8)

Student f(x; θ) = v1 tanh(w1 x) + v2 tanh(w2 x), θ = (w1, w2, v1, v2), trained by SGD on
samples x ~ N(0, σ²) with labels y = T(x) + ξ, ξ ~ N(0, τ²):

| symbol | control | meaning |
|---|---|---|
| η | learning rate | step size: θ ← θ − η · mean-batch gradient of ½(f − y)² |
| σ² | input variance | the spread of the inputs; paper 000 contrasts σ² = 0.1 and 1 |
| S | batch size | samples per step (S = 1: online learning) |
| τ | label noise | std of the noise added to the labels (paper 001) |
| N | dataset size | ∞: fresh samples every step; a number: one fixed dataset, S ≥ N is full-batch GD |
| T(x) | teacher | 2tanh(x) − tanh(4x) (paper 000) or 2tanh(x) (paper 001) |

The grey diamonds are the eight optimal points Θ* of eq. (9). The dashed diagonal is the
degenerate subspace w1 = w2 (v1 = v2): on it the two hidden neurons are copies of each other
and the network has effectively one neuron. Paper 000 shows that input noise can *pull* SGD
onto it ("noise-induced degeneration").

## Live trajectories

* **Play / Pause / Step / Reset** run an ensemble of SGD trajectories from initial conditions
  uniform in [−1, 1]⁴; *steps per frame* sets how many SGD steps are computed between redraws.
* Move **η** or **τ** while it runs: the change is marked with a dotted line. Changing σ², S,
  the teacher, N or the seed restarts the run (they change the data SGD sees).
* The planes show fading tails; the loss is the expected loss E[½(f − T)²] on log–log axes;
  |w1 − w2| and |v1 − v2| fall to zero when the network degenerates.
* If the loss blows up (η too large), the run pauses and says so.
* Every parameter is in the URL: copy it to share exactly this run.

## Stability maps & pullback attractors

* Left: the eigenvalues μ±(x) of the 2-D map on M_wv at a point (w, v), with the input
  density; where μ+ ≤ 0 a sample pulls SGD towards the point (paper 000 Fig. 3 left).
* Right: π = P[μ+ ≤ 0] over (w, v) ∈ [0, 2]² with the valley curve C (Fig. 3 right), its
  finite-η version, or the Lyapunov exponent λ of the linearised random map (λ < 0: almost
  sure contraction). Click to pick the point; the link under it opens the live page there.
* Below: the pullback cloud of 10⁵ paths driven by one noise realisation (Fig. 4) and the
  fraction trapped near M_wv or its mirror copy {w1 = −w2, v1 = −v2}.

## Phase diagrams (paper 002)

* The λ–μ and λ–S maps colour each (η, μ) or (η, S) by the phase of Proposition 1, from the
  Lyapunov exponents Λ± of w ∓ u at the saddle; hover for the values with their errors.
* Click a cell to simulate SGD there and compare the empirical verdict with the theory;
  box-zoom to recompute a region at higher resolution.

## Presets

The [presets gallery](?page=gallery) lists every preset — the papers' figures and the lesson
prompts — with a link to open it, and a class link that hides the advanced controls.
"""


class AboutPage(Page):
    """Static explanation of the dashboard."""

    slug = "about"
    exports = False

    @property
    def sidebar(self) -> pn.viewable.Viewable:
        return pn.pane.Markdown(f"engine version {engine_version()}", styles={"color": "#666"})

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.pane.Markdown(TEXT, sizing_mode="stretch_width", max_width=900)
