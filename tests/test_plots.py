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
    errors = [r[k] for r in rows for k in ("train_loss", "reconstruction_error", "unobserved_error")]
    assert _labelled(ax) and ax.get_yscale() == ("log" if plots.spans_decades(errors, 1.0) else "linear")
    assert len(ax.get_legend().get_texts()) == len(ax.get_lines()) == 3  # loss, error, unobserved error
    assert {p.name for p in run.glob("*.png")} == {"quantities.png", "errors.png"}


def test_a_gradient_flow_run_is_drawn_from_its_first_time_and_titled_without_a_learning_rate(tmp_path):
    """The flow's time axis starts a decade before its first positive time (t = 0 drawn there, and said so), not
    at a fixed tiny value that would leave most of the log axis to the flat start; the flow has no learning rate,
    so the title and the run's directory name its integrator and tolerance, or the flow, instead."""
    assert main(["mf", *TINY, "--init-scale", "1e-3", "--optimizer", "gradient-flow", "--flow-method", "rkc",
                 "--out", str(tmp_path)]) == 0
    run = next(tmp_path.iterdir())
    assert run.name == "depth3-init0.001-flow-seed0-data0"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    setup = plots.describe_setup(json.loads((run / "config.json").read_text()))
    assert "gradient flow (rkc, rtol 0.0001)" in setup and " lr " not in setup

    ax = plots.quantities_figure(rows, setup).axes[0]
    first = min(r["time"] for r in rows if r["time"] > 0)
    drawn = ax.get_lines()[0].get_xdata()
    assert rows[0]["time"] == 0 and drawn[0] == first / 10 and list(drawn[1:]) == [r["time"] for r in rows[1:]]
    assert f"t = 0 drawn at {first / 10:.2g}" in ax.get_xlabel()
    assert ax.get_xlim()[0] > first / 100  # the axis starts at the drawn origin, not decades before it


def test_errors_get_a_log_axis_from_one_decade_and_a_linear_one_within_it():
    """A run whose errors stay within a decade (nothing learned yet) had them on a log axis ticked 9.98×10⁻¹."""
    def rows(loss):
        return [{"step": k, "train_loss": v, "reconstruction_error": 1.0} for k, v in enumerate(loss)]

    assert plots.errors_figure(rows([1.0, 0.5, 1e-3])).axes[0].get_yscale() == "log"
    assert plots.errors_figure(rows([1.0, 0.999, 0.998])).axes[0].get_yscale() == "linear"


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


def test_saved_log_axes_spanning_decades_label_powers_of_ten_in_plain_text_and_tick_2_and_5(tmp_path):
    """``plots.save`` labels a log axis that spans decades 10⁻⁶ … 10⁰ without mathtext and puts its minor ticks at 2
    and 5 of each decade; an axis within one decade keeps matplotlib's ticks (which label its minor values)."""
    import math

    import matplotlib.pyplot as plt

    fig, (wide, narrow) = plt.subplots(1, 2)
    wide.loglog([1, 1e4], [1e-6, 1])
    narrow.plot([1, 2], [2, 5])
    narrow.set_yscale("log")
    plots.save(fig, tmp_path / "axes.png")
    assert (tmp_path / "axes.png").stat().st_size > 0
    for axis in (wide.xaxis, wide.yaxis):
        low, high = sorted(axis.get_view_interval())
        majors = [v for v in axis.get_majorticklocs() if low <= v <= high]
        labels = [axis.get_major_formatter()(v) for v in majors]
        assert labels and all(label == "10" + str(round(math.log10(v))).translate(plots.SUPERSCRIPTS)
                              for v, label in zip(majors, labels))
        minors = [v for v in axis.get_minorticklocs() if low <= v <= high]
        assert minors and {round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6) for v in minors} == {2.0, 5.0}
    assert "10⁻⁶" in [wide.yaxis.get_major_formatter()(v) for v in wide.yaxis.get_majorticklocs()]
    assert not isinstance(narrow.yaxis.get_major_formatter(), type(wide.yaxis.get_major_formatter()))


def test_power_of_ten_labels():
    assert [plots.power_of_ten(v) for v in (1e-3, 1.0, 100.0, 1e12)] == ["10⁻³", "10⁰", "10²", "10¹²"]
    assert plots.power_of_ten(0.03) == "0.03" and plots.power_of_ten(0.0) == "" and plots.power_of_ten(-1.0) == ""


def test_a_run_that_diverged_at_its_first_record_is_plotted_without_error(tmp_path):
    """Its only row holds NaN loss and errors: nothing a log axis can show (matplotlib raised "Data cannot be
    log-scaled", a traceback after the run's results were written)."""
    rows = [{"step": 0, "train_loss": None, "reconstruction_error": None, "singular_values": [None, None]}]
    written = plots.plot_run(tmp_path, rows)
    assert [p.name for p in written] == ["quantities.png", "errors.png"] and all(p.stat().st_size for p in written)
