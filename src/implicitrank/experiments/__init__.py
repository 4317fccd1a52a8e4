"""Reproductions of the four papers' figures, each checked against the published numbers.

Examples
--------
>>> from implicitrank.experiments import MODULES, experiment
>>> module = experiment("arora2019-completion")
>>> module.NAME in MODULES, sorted(module.SCALES)
(True, ['paper', 'quick', 'test'])
"""

from .claims import Claim, check, check_close, check_order_of_magnitude, not_run, write_claims
from .registry import MODULES, SCALE_NAMES, experiment, reproduce

__all__ = ["MODULES", "SCALE_NAMES", "Claim", "check", "check_close", "check_order_of_magnitude", "experiment",
           "not_run", "reproduce", "write_claims"]
