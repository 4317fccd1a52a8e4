"""Shared test settings: tiny problems run fastest on one thread, and shared CI cores stay predictable."""

import torch

torch.set_num_threads(1)
