"""Every figure the experiments write is fit for a paper: each panel has both axis labels and a title (its own or
the figure's), a panel with several lines has a legend, and non-negative values spanning three decades or more are
on a log axis."""

import math
from pathlib import Path

import matplotlib.figure
import pytest

from implicitrank.experiments import MODULES, reproduce

# Figures that show incremental learning on a linear axis, as the papers' own figures do (a log axis would hide the
# one-after-another rise that the figure is about).
LINEAR_AS_PUBLISHED = {
    "synthetic_dynamics.png": "Arora et al. 2019, Figure 3",
    "component_norms.png": "Razin, Maman & Cohen 2021, Figure 2",
    "dynamics.png": "Razin, Maman & Cohen 2022, Figures 1 and 2",
}


def problems(fig, linear_as_published: bool = False) -> list[str]:
    """What a reader would miss in ``fig``: unlabelled axes, an untitled panel, several lines without a legend."""
    found = []
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    for i, ax in enumerate(a for a in fig.axes if a.get_visible() and a.axison and a.get_label() != "<colorbar>"):
        if not ax.get_xlabel():
            found.append(f"panel {i}: no x label")
        if not ax.get_ylabel():
            found.append(f"panel {i}: no y label")
        if not (ax.get_title() or suptitle):
            found.append(f"panel {i}: no title")
        ys = [y for line in ax.get_lines() for y in line.get_ydata() if isinstance(y, (int, float)) and y > 0]
        if not linear_as_published and ax.get_yscale() == "linear" and len(ys) > 1 and max(ys) / min(ys) >= 1e3 and min(
                float(y) for line in ax.get_lines() for y in line.get_ydata() if isinstance(y, (int, float))) >= 0:
            found.append(f"panel {i}: values span {math.log10(max(ys) / min(ys)):.0f} decades on a linear axis")
        labelled = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        if len(ax.get_lines()) > 1 and ax.get_legend() is None and not fig.legends and not labelled:
            found.append(f"panel {i}: {len(ax.get_lines())} lines and no legend")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODULES))
def test_experiment_figures_have_labels_titles_and_legends(name, tmp_path, monkeypatch):
    seen = []
    original = matplotlib.figure.Figure.savefig

    def checked(fig, path, *args, **kwargs):
        seen.append((str(path), problems(fig, Path(path).name in LINEAR_AS_PUBLISHED)))
        return original(fig, path, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", checked)
    reproduce(name, "test", tmp_path)
    assert seen, f"{name} drew no figure"
    assert [(p, f) for p, f in seen if f] == []
