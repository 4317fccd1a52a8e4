"""Reproductions of the four papers' figures, each checked against the published numbers.

Examples
--------
>>> from implicitrank.experiments import MODULES, experiment
>>> module = experiment("arora2019-completion")
>>> module.NAME in MODULES, sorted(module.SCALES)
(True, ['paper', 'quick', 'test'])
"""

from .claims import Claim, evaluate, not_run, seed_list, write_claims
from .published import Published
from .registry import MODULES, SCALE_NAMES, experiment, reproduce

__all__ = ["MODULES", "SCALE_NAMES", "Claim", "Published", "evaluate", "experiment", "not_run", "reproduce",
           "seed_list", "write_claims"]
