"""Checkpoint loading from a local file (the benchmarks time random weights; no download)."""
import torch


def _load_checkpoint(filename, map_location="cpu", logger=None):
    return torch.load(filename, map_location=map_location)


def load_checkpoint(model, filename, map_location="cpu", strict=False, logger=None):
    checkpoint = _load_checkpoint(filename, map_location)
    state = checkpoint.get("state_dict", checkpoint.get("model", checkpoint))
    model.load_state_dict(state, strict=strict)
    return checkpoint
