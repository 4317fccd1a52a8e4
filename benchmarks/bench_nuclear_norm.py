"""Minimum-nuclear-norm completion: our ADMM against cvxpy + SCS (issues 6 and 18).

Problem: a rank-5 n×n ground truth (papers.md §1 generator, entries of RMS 1), ``--observations`` entries
observed (n = 100: 2000 and 5000), each with the exact constraints (eps = 0) and the relaxed ones
|X_ij − y_ij| <= 1e-3 (the papers' cvx set-up). Ours stops on its certificate: relative constraint residual
<= 1e-6 and relative duality gap <= 1e-6, within 2,000 SVDs (the target of issue 18). SCS stops on its own test at
eps 1e-6; its residual and nuclear norm are reported beside ours. Both run ``--repeats`` times per problem (SCS
``--scs-repeats`` times), after one untimed solve of a small problem by each, so that neither pays for imports or
first-call set-up (until 2026-12-03 SCS ran once, and the first problem's solve included importing cvxpy: about
1-2 s on a 0.5-2 s solve). Min and median are reported for CPU seconds (this process, all threads) and for wall
seconds, and the speed-ups are SCS's min over ours's min and median over median. The floor: each of our SVDs is an
eigendecomposition of an n×n Gram matrix (``torch.linalg.eigh``, timed here on the same size); SCS's median over our
SVD count times that is the most any ADMM with our iteration count could gain, whatever the rest of its step costs.
A partial SVD would lower that floor only as far as a top-k decomposition is cheaper than ``eigh``: the "subspace"
floor times the cheapest one we know for an iterate that changes little, one warm-started block power step (two
n×n by n×k products, a QR, the SVD of the k×n projection) with k = the solution's rank + 5, and puts the rest of our
iteration (our CPU seconds per iteration minus one ``eigh``) beside it.
Prints a table and writes benchmarks/results/bench_nuclear_norm.json.

    python benchmarks/bench_nuclear_norm.py [--observations 2000 5000] [--eps 0 1e-3] [--repeats 5]
        [--scs-repeats 3] [--skip-cvxpy]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import write_results

from implicitrank.baselines import nuclear_norm_min
from implicitrank.tasks import complete_from_target, low_rank_matrix

TOL = 1e-6
MAX_ITER = 2_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, the package's policy)")
    parser.add_argument("--size", type=int, default=100, help="rows = cols of the target")
    parser.add_argument("--observations", type=int, nargs="+", default=[2000, 5000], help="observed entries")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.0, 1e-3], help="constraint slack eps")
    parser.add_argument("--repeats", type=int, default=5, help="our solves per problem")
    parser.add_argument("--scs-repeats", type=int, default=3, help="cvxpy + SCS solves per problem")
    parser.add_argument("--skip-cvxpy", action="store_true", help="do not run the cvxpy + SCS comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    truth = low_rank_matrix(args.size, args.size, 5, seed=0)
    eigh_seconds = _eigh_seconds(args.size)
    warm_up = complete_from_target(low_rank_matrix(10, 10, 2, seed=0), 60, [0])
    nuclear_norm_min(warm_up, tol=TOL)
    if not args.skip_cvxpy:
        nuclear_norm_min(warm_up, method="cvxpy", solver="SCS", tol=TOL)
    rows = []
    for observations in args.observations:
        task = complete_from_target(truth, observations, [0])
        for eps in args.eps:
            ours = _timed_row(task, args.repeats, "admm", eps, tol=TOL, max_iter=MAX_ITER)
            rows.append(ours)
            if not args.skip_cvxpy:
                scs = _timed_row(task, args.scs_repeats, "cvxpy+SCS", eps, method="cvxpy", solver="SCS", tol=TOL,
                                 max_iter=1_000_000)
                rows.append(scs | {
                    "speedup_min": scs["seconds_min"] / ours["seconds_min"],
                    "speedup_median": scs["seconds_median"] / ours["seconds_median"],
                    "wall_speedup_min": scs["wall_seconds_min"] / ours["wall_seconds_min"],
                    "wall_speedup_median": scs["wall_seconds_median"] / ours["wall_seconds_median"],
                    "eigh_seconds": eigh_seconds,
                    "speedup_floor": scs["seconds_median"] / (ours["iterations"] * eigh_seconds),
                    **_subspace_floor(args.size, ours, scs["seconds_median"], eigh_seconds),
                    "nuclear_norm_relative_difference": (scs["nuclear_norm"] - ours["nuclear_norm"])
                    / ours["nuclear_norm"]})
    print(f"{'obs':>5} {'eps':>6} {'method':<10} {'min s':>8} {'median s':>9} {'iters':>6} {'conv':>5} "
          f"{'residual':>9} {'gap':>9} {'nuclear':>12} {'CPU speedup':>12} {'wall':>9} {'floor':>6}")
    for r in rows:
        speed = f"{r['speedup_min']:.1f}x/{r['speedup_median']:.1f}x" if "speedup_min" in r else ""
        wall = f"{r['wall_speedup_min']:.1f}x/{r['wall_speedup_median']:.1f}x" if "speedup_min" in r else ""
        floor = f"{r['speedup_floor']:.0f}x" if "speedup_floor" in r else ""
        print(f"{r['observations']:>5} {r['eps']:>6g} {r['method']:<10} {r['seconds_min']:>8.3f} "
              f"{r['seconds_median']:>9.3f} {r['iterations']:>6} {r['converged']!s:>5} "
              f"{r['constraint_residual']:>9.1e} {r['duality_gap']:>9.1e} {r['nuclear_norm']:>12.6f} {speed:>12} "
              f"{wall:>9} {floor:>6}")
    print(f"CPU seconds, min and median; speed-ups SCS/ours, min/min and median/median. One {args.size}x{args.size} "
          f"eigh: {eigh_seconds * 1e3:.2f} ms CPU (median); floor = SCS median CPU s / (our SVDs x that)")
    for r in rows:
        if "subspace_seconds" in r:
            print(f"{r['observations']:>5} {r['eps']:>6g}: solution rank {r['solution_rank']}; a block step of "
                  f"{r['subspace_block']} {r['subspace_seconds'] * 1e3:.2f} ms, the rest of our iteration "
                  f"{r['rest_seconds'] * 1e3:.2f} ms: with that partial SVD at most {r['speedup_floor_subspace']:.1f}x")
    path = write_results("bench_nuclear_norm", {"size": args.size, "rank": 5, "tol": TOL, "max_iter": MAX_ITER,
                                                "eigh_seconds": eigh_seconds, "repeats": args.repeats,
                                                "scs_repeats": args.scs_repeats, "rows": rows})
    print(f"wrote {path}")


def _eigh_seconds(size: int, repeats: int = 200) -> float:
    """Median CPU seconds of ``torch.linalg.eigh`` on a size×size Gram matrix: the floor of one of our SVDs."""
    a = torch.randn(size, size, dtype=torch.float64)
    gram = a.T @ a
    seconds = []
    for _ in range(repeats):
        began = time.process_time()
        torch.linalg.eigh(gram)
        seconds.append(time.process_time() - began)
    return statistics.median(seconds)


def _subspace_floor(size: int, ours: dict, scs_seconds: float, eigh_seconds: float, repeats: int = 200) -> dict:
    """The speed-up over SCS our iteration count would allow with each SVD replaced by one warm-started block power
    step of width solution rank + 5 (median CPU seconds), the rest of our iteration kept as measured."""
    block = min(ours["solution_rank"] + 5, size)
    a = torch.randn(size, size, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(size, block, dtype=torch.float64)).Q
    seconds = []
    for _ in range(repeats):
        began = time.process_time()
        q_new = torch.linalg.qr(a @ (a.T @ q)).Q
        torch.linalg.svd(q_new.T @ a, full_matrices=False)
        seconds.append(time.process_time() - began)
    step = statistics.median(seconds)
    rest = max(ours["seconds_median"] / ours["iterations"] - eigh_seconds, 0.0)
    return {"solution_rank": ours["solution_rank"], "subspace_block": block, "subspace_seconds": step,
            "rest_seconds": rest, "speedup_floor_subspace": scs_seconds / (ours["iterations"] * (step + rest))}


def _timed_row(task, repeats: int, label: str, eps: float, **options) -> dict:
    """``repeats`` solves of ``nuclear_norm_min(task, eps_constraint=eps, **options)``: the last one's row with the
    min and median of their CPU seconds (this process, all threads: on a shared machine far steadier than wall time)
    and of their wall seconds."""
    cpu, wall = [], []
    for _ in range(repeats):
        began = time.process_time()
        result = nuclear_norm_min(task, eps_constraint=eps, **options)
        cpu.append(time.process_time() - began)
        wall.append(result.seconds)
    return _row(task, result, label, eps) | {
        "seconds": cpu, "seconds_min": min(cpu), "seconds_median": statistics.median(cpu), "wall_seconds": wall,
        "wall_seconds_min": min(wall), "wall_seconds_median": statistics.median(wall)}


def _row(task, result, method: str, eps: float) -> dict:
    truth = task.target[0]
    error = torch.linalg.matrix_norm(result.solution - truth) / torch.linalg.matrix_norm(truth)
    return {"observations": task.num_observations, "eps": eps, "method": method, "iterations": result.iterations,
            "converged": result.converged, "constraint_residual": result.constraint_residual,
            "duality_gap": result.duality_gap, "nuclear_norm": result.nuclear_norm, "relative_error": float(error),
            "solution_rank": int(torch.linalg.matrix_rank(result.solution, rtol=1e-6))}


if __name__ == "__main__":
    main()
