"""Shared test settings: tiny problems run fastest on one thread, and shared CI cores stay predictable."""

import torch

torch.set_num_threads(1)

from browser import chromium  # noqa: E402,F401  (the headless-Chromium fixture, shared by the page tests)
