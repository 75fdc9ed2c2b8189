"""Batch samplers with PaddleClas names: ``DistributedBatchSampler`` and ``BatchSampler``
(Paddle's own), ``RASampler`` (repeated augmentation) and ``MultiScaleSampler``.

All of them shard by ``paddle.distributed`` rank and take ``set_epoch(epoch)`` so the order
depends only on the epoch number (a resumed run sees the same batches).
"""
import math
import random

import numpy as np
import paddle
import paddle.distributed as dist

__all__ = ["RASampler", "MultiScaleSampler", "SAMPLERS", "build_sampler"]


class RASampler(paddle.io.DistributedBatchSampler):
    """Repeated augmentation (Hoffer et al. 2020; DeiT, Touvron et al. 2021, Sec. 6): every
    image appears ``num_repeats`` times per epoch, the copies spread over the ranks, and each
    rank keeps ``floor(N / 256) * 256 / world_size`` samples, as DeiT does."""

    def __init__(self, dataset, batch_size, num_replicas=None, rank=None, shuffle=False,
                 drop_last=False, num_repeats=3):
        super().__init__(dataset, batch_size, num_replicas, rank, shuffle, drop_last)
        self.num_repeats = int(num_repeats)
        self.num_samples = int(math.ceil(len(self.dataset) * self.num_repeats / self.nranks))
        self.total_size = self.num_samples * self.nranks
        self.num_selected_samples = int(math.floor(len(self.dataset) // 256 * 256 / self.nranks))
        if self.num_selected_samples == 0:
            raise ValueError(f"RASampler keeps floor(N / 256) * 256 images per epoch (DeiT's rule); "
                             f"this dataset has N = {len(self.dataset)}, so an epoch would be empty. "
                             f"Use DistributedBatchSampler for datasets under 256 images")

    def __iter__(self):
        indices = list(range(len(self.dataset)))
        if self.shuffle:
            np.random.RandomState(self.epoch).shuffle(indices)
        indices = [i for i in indices for _ in range(self.num_repeats)]
        indices += indices[:self.total_size - len(indices)]
        mine = indices[self.local_rank:self.total_size:self.nranks][:self.num_selected_samples]
        for start in range(0, len(mine), self.batch_size):
            batch = mine[start:start + self.batch_size]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __len__(self):
        n = self.num_selected_samples + (0 if self.drop_last else self.batch_size - 1)
        return n // self.batch_size


class MultiScaleSampler(paddle.io.Sampler):
    """Batches of one resolution each, drawn from ``scales`` (ints or (w, h) pairs, rounded down
    to multiples of ``divided_factor`` when training); the batch size of each scale keeps
    ``first_bs * w0 * h0`` pixels per batch (Mehta & Rastegari, MobileViT, Sec. 3.3). Each index
    it yields is ``(width, height, image index)`` for :class:`MultiScaleDataset`."""

    def __init__(self, data_source, scales, first_bs, divided_factor=32, is_training=True,
                 shuffle=True, seed=None):
        self.data_source = data_source
        pairs = [tuple(s) if isinstance(s, (list, tuple)) else (int(s), int(s)) for s in scales]
        base_w, base_h = pairs[0]
        if is_training:
            pairs = [(int(w // divided_factor * divided_factor), int(h // divided_factor * divided_factor))
                     for w, h in pairs]
            base = base_w * base_h * int(first_bs)
            self.img_batch_pairs = [(w, h, int(max(1, base / (w * h)))) for w, h in pairs]
        else:
            self.img_batch_pairs = [(base_w, base_h, int(first_bs))]
        self.nranks, self.rank = dist.get_world_size(), dist.get_rank()
        self.n_per_rank = int(math.ceil(len(data_source) / self.nranks))
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        plan_rng = random.Random(0 if seed is None else seed)
        self.batch_plan, done = [], 0
        while done < self.n_per_rank:
            w, h, bs = plan_rng.choice(self.img_batch_pairs)
            self.batch_plan.append((w, h, bs))
            done += bs

    def __iter__(self):
        indices = list(range(len(self.data_source)))
        plan = list(self.batch_plan)
        if self.shuffle:
            rng = random.Random(self.seed if self.seed is not None else self.epoch)
            rng.shuffle(indices)
            rng.shuffle(plan)
        mine = indices[self.rank::self.nranks]
        start = 0
        for w, h, bs in plan:
            ids = mine[start:min(start + bs, self.n_per_rank)]
            ids += mine[:bs - len(ids)]  # wrap around so every batch is full
            start += bs
            if ids:
                yield [(w, h, i) for i in ids]

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.batch_plan)


SAMPLERS = {"DistributedBatchSampler": paddle.io.DistributedBatchSampler,
            "BatchSampler": paddle.io.BatchSampler, "RASampler": RASampler,
            "MultiScaleSampler": MultiScaleSampler}


def build_sampler(dataset, sampler_cfg, shuffle_default=False):
    """``DataLoader.<mode>.sampler`` mapping -> a batch sampler (DistributedBatchSampler unless
    ``name`` says otherwise; it shards by rank and equals a BatchSampler in one process)."""
    cfg = dict(sampler_cfg or {})
    name = cfg.pop("name", "DistributedBatchSampler")
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{name}'; accepted: {sorted(SAMPLERS)}")
    if name == "MultiScaleSampler":
        return MultiScaleSampler(dataset, **cfg)
    kwargs = dict(batch_size=int(cfg.pop("batch_size", 64)),
                  shuffle=bool(cfg.pop("shuffle", shuffle_default)),
                  drop_last=bool(cfg.pop("drop_last", False)))
    if name == "BatchSampler":
        return paddle.io.BatchSampler(dataset, **kwargs)
    return SAMPLERS[name](dataset, **kwargs, **cfg)
