"""The two plots every ``mf``/``tf``/``htf`` run writes (``quantities.png``, ``errors.png``): ``plots.save`` against
matplotlib's default log ticks (mathtext decade labels, minor ticks and grid lines at 2–9 of each decade).

Makes one real run (``implicitrank mf``, the default 100×100 rank-5 depth-3 problem, gradient flow by rkc) in a
temporary directory, then draws its two figures ``--repeats`` times each way, interleaved, in this process (the
matplotlib import and the first figure's font loading are paid before timing). Prints CPU seconds per run's pair
of figures (min and median) and defaults/ours, and writes benchmarks/results/bench_plots.json.

    python benchmarks/bench_plots.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from _common import write_results  # noqa: E402

from implicitrank import plots, results  # noqa: E402
from implicitrank.cli import main as cli  # noqa: E402

RUN = ["mf", "--optimizer", "gradient-flow", "--flow-method", "rkc", "--no-progress", "--threads", "1"]


def draw(rows: list[dict], setup: str, out: Path, ours: bool) -> float:
    """CPU seconds to draw and write the run's two figures, with ``plots.save`` or matplotlib's defaults."""
    start = time.process_time()
    for make, name in ((plots.quantities_figure, "quantities.png"), (plots.errors_figure, "errors.png")):
        fig = make(rows, setup)
        if ours:
            plots.save(fig, out / name)
        else:
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="pairs of figures drawn each way (default: 7)")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be >= 3")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if cli([*RUN, "--out", str(out / "run")]) != 0:
            raise SystemExit("the run failed")
        run = next((out / "run").iterdir())
        rows = results.read_metrics(run)
        setup = plots.describe_setup(results.read_json(run / results.CONFIG))
        draw(rows, setup, out, ours=True)
        draw(rows, setup, out, ours=False)
        times: dict[str, list[float]] = {"ours": [], "defaults": []}
        for _ in range(args.repeats):
            for way in times:
                times[way].append(draw(rows, setup, out, ours=way == "ours"))
    summary = {way: {"min": min(t), "median": statistics.median(t)} for way, t in times.items()}
    ratio = {k: summary["defaults"][k] / summary["ours"][k] for k in ("min", "median")}
    for way, s in summary.items():
        print(f"{way:9s} {s['min']:.3f} s (min) {s['median']:.3f} s (median) per run's two figures")
    print(f"defaults/ours: {ratio['min']:.2f} (min), {ratio['median']:.2f} (median); {len(rows)} recorded rows")
    path = write_results("bench_plots", {"rows": len(rows), "repeats": args.repeats, "run": RUN,
                                         "load_average": list(os.getloadavg()), "seconds": times,
                                         "summary": summary, "defaults_over_ours": ratio})
    print(f"results in {path}")


if __name__ == "__main__":
    main()
