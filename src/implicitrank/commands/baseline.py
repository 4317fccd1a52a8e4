"""``implicitrank nnm``: minimum nuclear norm subject to the observations, on the same data as ``mf``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ._common import add_out, add_parser, add_threads, apply_threads, default_out, format_table, resolve_data
from .factorize import DATA_FILES, add_data_arguments, resolve_problem

if TYPE_CHECKING:
    from ..run import RunConfig

COLUMNS = ("run", "status", "reconstruction_error", "reconstruction_error_squared", "nuclear_norm", "effective_rank",
           "constraint_residual", "iterations", "seconds")


def register(subparsers) -> None:
    p = add_parser(
        subparsers, "nnm", help="minimum nuclear norm completion/sensing (the baseline)",
        description="Minimize ||X||_* subject to the observations (|X_ij - y_ij| <= eps), by ADMM or cvxpy.")
    add_data_arguments(p, "matrix", seeds_help="one (nnm solves one observation set per call)")
    p.add_argument("--eps-constraint", type=float, default=0.0,
                   help="allowed violation per observation (Arora et al. 2019 used 1e-3)")
    p.add_argument("--method", choices=("admm", "cvxpy"), default="admm", help="solver")
    p.add_argument("--tol", type=float, default=1e-7, help="relative stopping tolerance")
    p.add_argument("--max-iter", type=int, default=20_000, help="cap on the ADMM's SVDs (cvxpy: its iterations)")
    add_threads(p)
    add_out(p, "nnm")
    p.set_defaults(func=run_nnm)


# The RunConfig fields that make the problem a baseline solves (build_task reads these for a matrix); config.json
# records these and the solver's options, not the training fields (optimizer, lr, depth, init, ...) it never uses.
PROBLEM_FIELDS = ("model", "task", "shape", "rank", "num_observations", "target_norm", "data", "data_seed",
                  "truth_seed", "dtype")


def solve_and_save(config: RunConfig, run_dir: Path, **options) -> dict:
    """Solve run 0 of ``config``'s problem, write ``config.json`` (the problem's fields and the solver's options),
    ``solution.pt`` and ``summary.json``."""
    import torch

    from .. import results
    from ..baselines import nuclear_norm_min
    from ..measure import effective_rank, relative_error
    from ..run import build_task

    task = build_task([config]).to("cpu", torch.float64)  # first: a refused input leaves no directory behind
    problem = {k: v for k, v in config.to_dict().items() if k in PROBLEM_FIELDS}
    results.prepare_run_dir(run_dir, {"baseline": "nuclear_norm_min", **options, **problem}, resume=False,
                            resumable=False)
    solved = nuclear_norm_min(task, 0, **options)
    x = solved.solution.double()[None]
    summary = {"status": "converged" if solved.converged else "not converged", "message": "",
               "nuclear_norm": solved.nuclear_norm, "constraint_residual": solved.constraint_residual,
               "iterations": solved.iterations, "converged": solved.converged, "seconds": solved.seconds,
               "effective_rank": float(effective_rank(torch.linalg.svdvals(x))[0])}
    if not solved.converged:  # a solve stopped by its cap is no optimum: said in the table, the summary and report
        summary["message"] = (f"stopped after {solved.iterations} iterations without meeting its tolerance "
                              f"(constraint residual {solved.constraint_residual:.2g}, duality gap "
                              f"{solved.duality_gap:.2g}); raise --max-iter")
    target = getattr(task, "target", None)
    if target is not None:
        error = float(relative_error(x, target[:1]))
        summary.update(reconstruction_error=error, reconstruction_error_squared=error**2)
        if hasattr(task, "observed_mask"):
            summary["unobserved_error"] = float(relative_error(x, target[:1], ~task.observed_mask()[:1]))
    if getattr(task, "test_indices", None) is not None:
        idx = task.test_indices.long()
        summary["test_mse"] = float((x[0][idx[:, 0], idx[:, 1]] - task.test_values[0]).pow(2).mean())
    results.save_torch(run_dir / "solution.pt", solved.solution)
    results.write_json(run_dir / results.SUMMARY, summary)
    return summary


def run_nnm(args: argparse.Namespace) -> int:
    apply_threads(args.threads)
    from ..run import RunConfig, check_memory

    fields = {k: v for k, v in vars(args).items() if k in RunConfig.__dataclass_fields__}
    if len(args.data_seeds) != 1:
        raise UsageError(f"--data-seeds: nnm solves one observation set per call, got {len(args.data_seeds)} seeds "
                         f"{args.data_seeds}; run nnm once per seed (with its own --out)")
    data = resolve_data(args.data, DATA_FILES)
    config = RunConfig(**{**fields, **resolve_problem(args, data), "data_seed": args.data_seeds[0],
                          "dtype": "float64", "data": data})
    if not math.isfinite(args.eps_constraint) or args.eps_constraint < 0:
        raise UsageError(f"eps_constraint must be >= 0, got {args.eps_constraint}")
    if not 0 < args.tol < 1:  # relative: 1 or more certified any X at once (--tol 1.5 'converged' in 1 iteration)
        raise UsageError(f"--tol is relative and must be in (0, 1), got {args.tol}")
    if args.max_iter < 1:
        raise UsageError(f"--max-iter must be >= 1, got {args.max_iter}")
    check_memory([config], ("--shape",), parameters=False)
    out = args.out or default_out("nnm")
    summary = solve_and_save(config, out, eps_constraint=args.eps_constraint, method=args.method, tol=args.tol,
                             max_iter=args.max_iter)
    print(format_table([{"run": out.name, **summary}], COLUMNS))
    if summary["message"]:
        print(f"warning: {out.name}: {summary['message']}")
    print(f"results in {out}")
    return 0
