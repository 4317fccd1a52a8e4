"""The run plots are fit for a paper: both axes labelled with units, a title naming the set-up, a legend entry per
line (σ₁…σ_k), and log axes where the values span decades."""

import json

from implicitrank import plots
from implicitrank.cli import main

TINY = ["--shape", "10", "8", "--rank", "2", "--num-observations", "50", "--max-steps", "300", "--no-progress"]


def _labelled(ax):
    return ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_quantities_and_errors_have_labels_legends_and_log_axes(tmp_path):
    assert main(["mf", *TINY, "--init-scale", "1e-4", "--top", "6", "--out", str(tmp_path)]) == 0
    run = next(tmp_path.iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    setup = plots.describe_setup(json.loads((run / "config.json").read_text()))
    assert "depth-3" in setup and "10×8 rank 2" in setup and "init 0.0001" in setup

    ax = plots.quantities_figure(rows, setup).axes[0]
    assert _labelled(ax) and "depth-3" in ax.get_title() and "units" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["σ₁", "σ₂", "σ₃", "σ₄", "σ₅", "σ₆"]
    # From init 1e-4 the top singular value grows by decades while the rest stay small: log axes.
    assert plots.spans_decades(v for r in rows for v in r["singular_values"])
    assert ax.get_xscale() == ax.get_yscale() == "log"

    ax = plots.errors_figure(rows, setup).axes[0]
    assert _labelled(ax) and ax.get_yscale() == "log"
    assert len(ax.get_legend().get_texts()) == len(ax.get_lines()) == 3  # loss, error, unobserved error
    assert {p.name for p in run.glob("*.png")} == {"quantities.png", "errors.png"}


def test_linear_axis_where_values_do_not_span_decades():
    assert not plots.spans_decades([1.0, 2.0, 50.0])
    assert plots.spans_decades([1e-3, 1.0])
    assert not plots.spans_decades([0.0, float("nan"), None, 1.0])


def test_demo_figure_has_legends_labels_and_a_report(tmp_path, monkeypatch, capsys):
    import matplotlib.figure
    from test_figures import problems

    found = {}
    original = matplotlib.figure.Figure.savefig

    def checked(fig, path, *args, **kwargs):
        found[str(path)] = (problems(fig), fig)
        return original(fig, path, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", checked)
    out = tmp_path / "demo"
    assert main(["demo", "--size", "16", "--rank", "2", "--num-observations", "120", "--max-steps", "400",
                 "--no-progress", "--out", str(out)]) in (0, 1)
    issues, fig = found[str(out / "demo.png")]
    assert issues == []
    assert "Arora et al. 2019" in fig._suptitle.get_text()
    legends = [ax.get_legend() for ax in fig.axes[:3]]
    assert all(legend is not None and legend.get_texts()[0].get_text() == "σ₁" for legend in legends)
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
