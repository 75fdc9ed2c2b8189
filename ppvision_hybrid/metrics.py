"""Top-k accuracy (``Metric.Eval: [{TopkAcc: {topk: [1, 5]}}]``), and ``DistillationTopkAcc`` for
one member of a DistillationModel."""
import numpy as np
import paddle

__all__ = ["TopkAcc", "DistillationTopkAcc", "build_metrics", "METRICS", "REFUSED_METRICS"]


class TopkAcc:
    """Counts correct predictions per k. ``update`` returns the batch accuracies; ``accumulate``
    the running ones over everything seen since ``reset``. Counts are plain integers so ranks can
    be summed exactly in distributed evaluation."""

    def __init__(self, topk=(1, 5)):
        self.topk = [int(k) for k in (topk if isinstance(topk, (list, tuple)) else [topk])]
        self.reset()

    def reset(self):
        self.correct = {k: 0 for k in self.topk}
        self.total = 0

    def batch_counts(self, logits, label):
        if isinstance(logits, dict):
            logits = logits["logits"]
        logits = logits.numpy() if isinstance(logits, paddle.Tensor) else np.asarray(logits)
        label = label.numpy() if isinstance(label, paddle.Tensor) else np.asarray(label)
        if label.ndim == 2 and label.shape[1] > 1:
            raise ValueError("TopkAcc needs integer labels; soft (Mixup/CutMix) targets have no top-k accuracy")
        label = label.reshape(-1)
        kmax = min(max(self.topk), logits.shape[-1])
        top = np.argsort(-logits, axis=-1)[:, :kmax]
        hits = top == label[:, None]
        return {k: int(hits[:, :min(k, kmax)].any(axis=1).sum()) for k in self.topk}, len(label)

    def update(self, logits, label):
        counts, n = self.batch_counts(logits, label)
        for k in self.topk:
            self.correct[k] += counts[k]
        self.total += n
        return {f"top{k}": counts[k] / max(n, 1) for k in self.topk}

    def accumulate(self):
        return {f"top{k}": self.correct[k] / max(self.total, 1) for k in self.topk}


class DistillationTopkAcc(TopkAcc):
    """TopkAcc of the member ``model_key`` of a DistillationModel (``feature_key`` picks an entry
    of a dict output). A plain tensor (evaluation already picked the member) is used as is."""

    def __init__(self, model_key, feature_key=None, topk=(1, 5)):
        super().__init__(topk)
        self.model_key, self.feature_key = model_key, feature_key

    def batch_counts(self, logits, label):
        if isinstance(logits, dict):
            logits = logits[self.model_key]
        if self.feature_key is not None and isinstance(logits, dict):
            logits = logits[self.feature_key]
        return super().batch_counts(logits, label)


METRICS = {"TopkAcc": TopkAcc, "DistillationTopkAcc": DistillationTopkAcc}
#: PaddleClas metrics that are refused, with the reason given to the user
REFUSED_METRICS = {"GoogLeNetTopkAcc": "it scores GoogLeNet's first auxiliary head; these models "
                                       "have one head (use TopkAcc)"}


def build_metrics(metric_list):
    metrics = []
    for item in metric_list or []:
        (name, kwargs), = item.items()
        if name in REFUSED_METRICS:
            raise ValueError(f"metric '{name}' is not supported: {REFUSED_METRICS[name]}")
        if name not in METRICS:
            raise ValueError(f"unknown metric '{name}'; accepted: {sorted(METRICS)}")
        metrics.append(METRICS[name](**(kwargs or {})))
    return metrics
