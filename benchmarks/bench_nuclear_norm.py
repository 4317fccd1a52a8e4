"""Minimum-nuclear-norm completion: our ADMM against cvxpy + SCS (issue 6).

Problem: a rank-5 n×n ground truth (papers.md §1 generator, entries of RMS 1), 20% of the entries observed
(n = 100: 2000 observations, the papers' setting), equality constraints. Both solvers must reach a relative
constraint residual ||A(X) − y||_2/||y||_2 <= 1e-6 (SCS's own tolerance is tightened until they do);
we report wall time, iterations, the nuclear norms and their ratio. n = 1000 runs ours only (cvxpy's SDP
has ~10^6 variables there). Prints a table and writes benchmarks/results/bench_nuclear_norm.json.

    python benchmarks/bench_nuclear_norm.py [--threads 2] [--sizes 100 1000] [--skip-cvxpy]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from implicitrank.baselines import nuclear_norm_min
from implicitrank.tasks import complete_from_target, low_rank_matrix

RESIDUAL = 1e-6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="matrix sizes n")
    parser.add_argument("--fraction", type=float, default=0.2, help="observed fraction of the entries")
    parser.add_argument("--skip-cvxpy", action="store_true", help="do not run the cvxpy + SCS comparison")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_nuclear_norm.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for n in args.sizes:
        task = complete_from_target(low_rank_matrix(n, n, 5, seed=0), round(args.fraction * n * n), [0])
        ours = nuclear_norm_min(task, tol=RESIDUAL)
        rows.append(_row(n, task, ours, "admm"))
        if n <= 200 and not args.skip_cvxpy:
            for scs_eps in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8):
                reference = nuclear_norm_min(task, method="cvxpy", solver="SCS", tol=scs_eps, max_iter=1_000_000)
                if reference.constraint_residual <= RESIDUAL:
                    break
            rows.append(_row(n, task, reference, f"cvxpy+SCS (eps {scs_eps:g})"))
            rows[-1]["seconds_ratio_to_ours"] = reference.seconds / ours.seconds
            rows[-1]["nuclear_norm_relative_gap"] = (reference.nuclear_norm - ours.nuclear_norm) / ours.nuclear_norm
    print(f"{'n':>5} {'obs':>7} {'method':<24} {'seconds':>9} {'iters':>6} {'residual':>9} {'nuclear':>12} "
          f"{'ratio':>7}")
    for r in rows:
        ratio = f"{r['seconds_ratio_to_ours']:.1f}x" if "seconds_ratio_to_ours" in r else ""
        print(f"{r['n']:>5} {r['observations']:>7} {r['method']:<24} {r['seconds']:>9.3f} {r['iterations']:>6} "
              f"{r['constraint_residual']:>9.1e} {r['nuclear_norm']:>12.6f} {ratio:>7}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
            "load_average": os.getloadavg(), "target_residual": RESIDUAL}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


def _row(n: int, task, result, method: str) -> dict:
    truth = task.target[0]
    error = torch.linalg.matrix_norm(result.solution - truth) / torch.linalg.matrix_norm(truth)
    return {"n": n, "observations": task.num_observations, "method": method, "seconds": result.seconds,
            "iterations": result.iterations, "converged": result.converged,
            "constraint_residual": result.constraint_residual, "nuclear_norm": result.nuclear_norm,
            "relative_error": float(error)}


if __name__ == "__main__":
    main()
