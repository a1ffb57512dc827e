"""The dashboard's pages: ``slug -> (title, factory)``; main.py builds one per session."""

from __future__ import annotations

from .about import AboutPage
from .escape import EscapePage
from .gallery import GalleryPage
from .overfit import OverfitPage
from .phases import PhasesPage
from .stability import StabilityPage
from .trajectories import TrajectoriesPage

PAGES = {
    "trajectories": ("Live trajectories", TrajectoriesPage),
    "stability": ("Stability maps & pullback", StabilityPage),
    "phases": ("Phase diagrams (paper 002)", PhasesPage),
    "escape": ("Escape times (papers 000, 003)", EscapePage),
    "overfit": ("Overfitting under label noise (paper 001)", OverfitPage),
    "gallery": ("Presets gallery", GalleryPage),
    "about": ("About SGD Atlas", AboutPage),
}
DEFAULT_PAGE = "trajectories"
