"""Shared test settings: tiny problems run fastest on one thread, and shared CI cores stay predictable. A suite
started in the background by a non-interactive shell (``pytest &``, ``nohup``) inherits an ignored SIGINT, and
so would every process it starts; the Ctrl-C tests need it delivered (the package itself rightly leaves an
ignored SIGINT ignored), so the suite takes Python's default back."""

import signal

import torch

torch.set_num_threads(1)
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from browser import chromium  # noqa: E402,F401  (the headless-Chromium fixture, shared by the page tests)
