"""Data pipeline: datasets, per-image transform ops, batch ops and the DataLoader builder."""
import numpy as np
import paddle

from .batch_ops import BATCH_OPS, CutmixOperator, MixupOperator, OpSampler, build_batch_ops
from .dataset import (DATASETS, DatasetNotFoundError, DigitsDataset, ImageNetDataset,
                      MultiScaleDataset, ensure_demo_data)
from .samplers import SAMPLERS, MultiScaleSampler, RASampler, build_sampler
from .transforms import TRANSFORM_OPS, build_transforms

__all__ = ["build_dataloader", "build_dataset", "ImageNetDataset", "DigitsDataset",
           "MultiScaleDataset", "DatasetNotFoundError", "TRANSFORM_OPS", "BATCH_OPS",
           "MixupOperator", "CutmixOperator", "OpSampler", "CheckedLoader", "build_transforms", "build_batch_ops",
           "SAMPLERS", "RASampler", "MultiScaleSampler", "ensure_demo_data"]


class BatchCollate:
    """Stack ``(image, label)`` samples; apply batch ops (Mixup/CutMix -> soft labels)."""

    def __init__(self, batch_ops):
        self.batch_ops = batch_ops

    def __call__(self, samples):
        failed = [s[1] for s in samples if s[0] is None]
        if failed:  # a sample the dataset could not read: a 2-D marker batch holding its index
            return np.zeros((1, 1), np.float32), np.array(failed[:1], np.int64)
        images = np.stack([s[0] for s in samples])
        labels = np.array([s[1] for s in samples], np.int64)
        for op in self.batch_ops:
            images, labels = op(images, labels)
        return images, labels


class CheckedLoader:
    """A ``paddle.io.DataLoader`` whose batches are checked for the marker of an image the
    dataset could not read (a 2-D image batch, see ``BatchCollate``; the check reads only the
    shape, no device copy): iteration then raises the dataset's DataError naming the file,
    in the main process, with or without workers."""

    def __init__(self, loader, dataset):
        self.loader, self.dataset = loader, dataset

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            if images.ndim == 2:
                raise self.dataset.read_error(int(np.asarray(labels).reshape(-1)[0]))
            yield images, labels

    def __getattr__(self, name):
        return getattr(self.loader, name)


def build_dataset(dataset_cfg):
    cfg = dict(dataset_cfg)
    name = cfg.pop("name")
    cfg.pop("batch_transform_ops", None)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; accepted: {sorted(DATASETS)}")
    return DATASETS[name](**cfg)


def build_dataloader(section_cfg, class_num, shuffle_default=False):
    """``DataLoader.Train`` / ``DataLoader.Eval`` -> (paddle.io.DataLoader, dataset, sampler).

    The DistributedBatchSampler shards by ``paddle.distributed`` rank (one shard in a single
    process); the engine calls ``sampler.set_epoch(epoch)`` so the shuffle order depends only on
    the epoch number, which makes resumed runs see the same batches."""
    dataset = build_dataset(section_cfg["dataset"])
    batch_ops = build_batch_ops(section_cfg["dataset"].get("batch_transform_ops"), class_num)
    sampler = build_sampler(dataset, section_cfg.get("sampler"), shuffle_default)
    loader_cfg = section_cfg.get("loader") or {}
    loader = paddle.io.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=BatchCollate(batch_ops),
        num_workers=int(loader_cfg.get("num_workers", 0)),
        use_shared_memory=bool(loader_cfg.get("use_shared_memory", True)), return_list=True)
    return CheckedLoader(loader, dataset), dataset, sampler
