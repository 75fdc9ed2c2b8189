"""The classification engine: ``Engine(config, mode).train() / .eval() / .infer() / .export()``.

Reads PaddleClas-schema configs (see :mod:`.config`) with PaddleClas's meanings. Models come from
the registry (``create_model(Arch.name, class_num=..., **other Arch keys)``) or are a
:class:`~.distillation.DistillationModel` of several. Runs single-process or under
``python -m paddle.distributed.launch`` (DistributedBatchSampler + DataParallel; logging,
VisualDL and checkpoints from rank 0 only).

As in PaddleClas: ``Global.update_freq`` accumulates gradients over that many batches (the loss
is divided by it, the optimizer, LR schedule and EMA advance once per update, and an epoch keeps
a whole number of updates); ``Global.to_static`` trains through ``paddle.jit.to_static`` with
the input spec ``[None] + Global.image_shape``; ``Global.class_num`` is a deprecated alias of
``Arch.class_num``; ``Global.print_mem_info`` adds peak memory to the progress lines;
``Global.log_ranks`` lists the ranks that log progress.
"""
import copy
import datetime
import os
import pickle
import random
import resource
import time
import warnings

import numpy as np
import paddle
import paddle.distributed as dist
import paddle.nn.functional as F

from ..cli_errors import InputFailures
from ..data import build_dataloader, build_transforms
from ..data.transforms import apply_transforms, is_chw
from ..losses import build_loss
from ..metrics import DistillationTopkAcc, build_metrics
from ..optim import build_optimizer
from ..inference import check_gpu_kernels
from ..io_atomic import fault_point
from ..registry import create_model
from ..weights import CheckpointError, load_checkpoint_file, load_state_dict_checked
from .checkpoint import (SUFFIXES, copy_checkpoint, load_resume_states, newest_epoch_checkpoint,
                         optimizer_state_to_structured, repair_best_model, save_checkpoint,
                         verify_params_file)
from .config import ARCH_ENGINE_KEYS, ARCH_GENERIC_KEYS, ConfigError, validate_config
from .distillation import DistillationModel
from .logger import VisualDLWriter, get_logger, log_config

__all__ = ["Engine", "ModelEMA", "TrainingError", "build_model_from_config"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss or non-finite weights); the message says where."""

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm")


class ModelEMA:
    """Exponential moving average of every floating state (parameters and BN statistics):
    ``ema = decay * ema + (1 - decay) * current`` after each optimizer step."""

    def __init__(self, model, decay=0.9999):
        self.decay = float(decay)
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @paddle.no_grad()
    def update(self, model):
        for k, v in model.state_dict().items():
            if paddle.is_floating_point(v):
                self.shadow[k] = self.shadow[k] * self.decay + v.detach().astype(self.shadow[k].dtype) * (1.0 - self.decay)
            else:
                self.shadow[k] = v.detach().clone()

    def state_dict(self):
        return self.shadow

    def load_state_dict(self, state):
        self.shadow = {k: paddle.to_tensor(v) for k, v in state.items()}


def _unwrap(model):
    return model._layers if isinstance(model, paddle.DataParallel) else model


def build_model_from_config(arch_cfg):
    """``Arch`` mapping -> model via the registry (or a DistillationModel of registered models);
    unknown factory kwargs become ConfigErrors."""
    arch = dict(arch_cfg)
    if arch.get("name") == "DistillationModel":
        shared = {k: arch[k] for k in ("class_num",) + ARCH_GENERIC_KEYS if k in arch}

        def member(cfg):
            return build_model_from_config({**shared, **cfg})
        try:
            return DistillationModel(arch.get("models"), member, arch.get("pretrained_list"),
                                     arch.get("freeze_params_list"), arch.get("infer_model_name"))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    name = arch.pop("name")
    class_num = int(arch.pop("class_num", 1000))
    pretrained = arch.pop("pretrained", False)
    for k in ARCH_ENGINE_KEYS:
        arch.pop(k, None)
    try:
        return create_model(name, pretrained=pretrained, class_num=class_num, **arch)
    except KeyError as e:
        raise ConfigError(f"Arch.name: {e.args[0] if e.args else e}") from None
    except TypeError as e:
        raise ConfigError(f"Arch: {name} does not accept the given keyword(s) {sorted(arch)} "
                          f"({e}). Arch keys other than {list(ARCH_ENGINE_KEYS)} are passed to the "
                          f"model factory.") from None


def primary_output(model, out):
    """The logits that evaluation, inference and export use: the ``infer_model_name`` member of a
    DistillationModel, the output itself otherwise."""
    model = _unwrap(model)
    if isinstance(out, dict) and isinstance(model, DistillationModel):
        return out[model.infer_model_name]
    return out


def _parse_ranks(value):
    if value is None:
        return {0}
    if isinstance(value, int):
        return {value}
    return {int(r) for r in str(value).replace(" ", "").split(",") if r != ""}


def _memory_message():
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return (f", max_mem_reserved: {paddle.device.cuda.max_memory_reserved() / 2 ** 20:.2f} MB, "
                f"max_mem_allocated: {paddle.device.cuda.max_memory_allocated() / 2 ** 20:.2f} MB")
    return f", max_rss: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.2f} MB"


def _fmt_time(seconds):
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class Engine:
    def __init__(self, config, mode="train"):
        if mode not in ("train", "eval", "infer", "export"):
            raise ValueError(f"mode must be train/eval/infer/export, got {mode}")
        validate_config(config)
        self.config = config
        self.mode = mode
        g = config.setdefault("Global", {}) or {}
        config["Global"] = g
        deprecated_class_num = g.get("class_num")
        if deprecated_class_num is not None:
            config["Arch"].setdefault("class_num", deprecated_class_num)
        self.arch_name = config["Arch"]["name"]
        self.class_num = int(config["Arch"].get("class_num", 1000))
        self.epochs = int(g.get("epochs", 1) or 1)
        self.output_dir = os.path.join(g.get("output_dir") or "./output", self.arch_name)

        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        self._setup_device(g.get("device", "cpu"))
        if self.world_size > 1:
            dist.init_parallel_env()
        replaced = self._claim_output_dir() if mode == "train" else []
        self.logger = get_logger(log_file=os.path.join(self.output_dir, f"{mode}.log")
                                 if mode in ("train", "eval") else None, rank=self.rank,
                                 info=self.rank in _parse_ranks(g.get("log_ranks", 0)))
        if replaced:
            self.logger.warning(f"Global.overwrite: removed the checkpoints of an earlier run in "
                                f"{self.output_dir}: {replaced}")
        if deprecated_class_num is not None:
            self.logger.warning("Global.class_num is deprecated (PaddleClas too): use Arch.class_num "
                                f"(now {config['Arch']['class_num']})")
        self.seed = g.get("seed")
        if self.seed is not None:
            paddle.seed(int(self.seed))
            np.random.seed(int(self.seed) + self.rank)
            random.seed(int(self.seed) + self.rank)
        if mode == "train":
            log_config(self.logger, config)

        # AMP: GPU only; on CPU say so once and run fp32.
        amp = config.get("AMP") or {}
        self.amp_level = None
        if amp and amp.get("use_amp", True):
            level = str(amp.get("level", "O1")).upper()
            if level not in ("O1", "O2"):
                raise ConfigError(f"AMP.level must be O1 or O2, got {amp.get('level')!r}")
            if self.device == "gpu":
                self.amp_level = level
            else:
                msg = (f"AMP (level {level}) was requested but the device is CPU: mixed precision "
                       f"needs a GPU, so this run trains and evaluates in fp32")
                self.logger.warning(msg)
                warnings.warn(msg)

        self.model = build_model_from_config(config["Arch"])
        self._load_pretrained(g.get("pretrained_model"))
        self.ema = None
        if config.get("EMA") and mode == "train":
            self.ema = ModelEMA(self.model, (config["EMA"] or {}).get("decay", 0.9999))
        self.vdl = VisualDLWriter(bool(g.get("use_visualdl")) and self.rank == 0 and mode == "train",
                                  os.path.join(self.output_dir, "vdl"), self.logger)

        self.train_loader = self.eval_loader = None
        loaders = config.get("DataLoader") or {}
        if mode == "train":
            if "Train" not in loaders:
                raise ConfigError("training needs DataLoader.Train")
            self.train_loader, self.train_dataset, self.train_sampler = build_dataloader(
                loaders["Train"], self.class_num, shuffle_default=True)
            self._check_labels(self.train_dataset, "DataLoader.Train")
        if loaders.get("Eval") and (mode == "eval" or (mode == "train" and g.get("eval_during_train", True))):
            self.eval_loader, self.eval_dataset, self.eval_sampler = build_dataloader(
                loaders["Eval"], self.class_num)
            self._check_labels(self.eval_dataset, "DataLoader.Eval")
        if mode == "eval" and self.eval_loader is None:
            raise ConfigError("evaluation needs DataLoader.Eval")

        loss_cfg = config.get("Loss") or {}
        self.train_loss = build_loss(loss_cfg.get("Train"))
        self.eval_loss = build_loss(loss_cfg.get("Eval"))
        metric_cfg = config.get("Metric") or {}
        self.train_metrics = build_metrics(metric_cfg.get("Train"))
        self.eval_metrics = build_metrics(metric_cfg.get("Eval") or [{"TopkAcc": {"topk": [1, 5]}}])

        self.optimizer = self.lr_scheduler = None
        if mode == "train":
            if self.train_loss is None:
                raise ConfigError("training needs Loss.Train (e.g. [{CELoss: {epsilon: 0.1}}])")
            if not config.get("Optimizer"):
                raise ConfigError("training needs an Optimizer section")
            self.update_freq = int(g.get("update_freq", 1) or 1)
            # Global.iter_per_epoch fixes the batches per epoch (the loader restarts as needed)
            batches = int(g.get("iter_per_epoch") or len(self.train_loader))
            if batches < self.update_freq:
                self.logger.warning(f"Global.update_freq ({self.update_freq}) is more than the "
                                    f"{batches} batches of an epoch: set to 1")
                self.update_freq = 1
            # an epoch keeps a whole number of updates (PaddleClas drops the remainder)
            self.iters_per_epoch = batches // self.update_freq * self.update_freq
            self.optimizer, self.lr_scheduler, self.param_groups = build_optimizer(
                config["Optimizer"], self.model, self.epochs, self.iters_per_epoch // self.update_freq)
            self.logger.info(f"weight decay on {len(self.param_groups['decay'])} parameters, none on "
                             f"{len(self.param_groups['no_decay'])}: {self.param_groups['no_decay'][:12]}"
                             f"{' ...' if len(self.param_groups['no_decay']) > 12 else ''}")
            self.scaler = None
            if self.amp_level:
                self.scaler = paddle.amp.GradScaler(
                    init_loss_scaling=float(amp.get("scale_loss", 65536.0)),
                    use_dynamic_loss_scaling=bool(amp.get("use_dynamic_loss_scaling", True)))
                if self.amp_level == "O2":
                    self.model, self.optimizer = paddle.amp.decorate(
                        models=self.model, optimizers=self.optimizer, level="O2", save_dtype="float32")
        if mode == "train" and g.get("to_static"):
            self._apply_to_static(g.get("image_shape"))
        self.train_model = paddle.DataParallel(self.model) if self.world_size > 1 and mode == "train" else self.model
        self.start_epoch, self.global_step = 0, 0
        self.best = {"metric": 0.0, "epoch": 0}
        if mode == "train" and g.get("checkpoints"):
            self._resume(str(g["checkpoints"]))

    # ---- setup helpers ----------------------------------------------------------------------
    def _claim_output_dir(self):
        """A training run that does not resume must not mix its checkpoints with an earlier
        run's: refuse a used ``output_dir`` unless ``Global.overwrite: True``, which removes the
        old checkpoints (on rank 0) and returns their names."""
        g = self.config["Global"]
        if g.get("checkpoints") or not os.path.isdir(self.output_dir):
            return []
        names = ("latest", "best_model")
        used = sorted(f for f in os.listdir(self.output_dir)
                      if f.endswith(".pdstates") and (f[:-len(".pdstates")] in names or f.startswith("epoch_")))
        if not used:
            return []
        if not g.get("overwrite"):
            newest = newest_epoch_checkpoint(self.output_dir)
            raise ConfigError(
                f"Global.output_dir: {self.output_dir} already holds checkpoints of an earlier run "
                f"({', '.join(u[:-len('.pdstates')] for u in used)}). Resume it with -o "
                f"Global.checkpoints={os.path.join(self.output_dir, 'latest')}"
                f"{' (or ' + newest + ')' if newest else ''}, train into another -o "
                f"Global.output_dir, or pass -o Global.overwrite=True to replace them")
        removed = sorted(f for f in os.listdir(self.output_dir)
                         if f.endswith(SUFFIXES + (".pdstates",))
                         and (f.split(".")[0] in names or f.startswith("epoch_")))
        start = str(g.get("pretrained_model") or "")
        start = start if start.endswith(".pdparams") else start + ".pdparams"
        if any(os.path.realpath(os.path.join(self.output_dir, f)) == os.path.realpath(start) for f in removed):
            raise ConfigError(f"Global.pretrained_model={g['pretrained_model']} is one of the checkpoints "
                              f"that Global.overwrite=True would remove: copy it out of "
                              f"{self.output_dir} first, or train into another Global.output_dir")
        if self.rank == 0:
            for f in removed:
                os.remove(os.path.join(self.output_dir, f))
        return removed

    def _load_pretrained(self, pretrained):
        """``Global.pretrained_model``: weights to start from (train) or to evaluate / run
        (eval, infer). ``random`` asks explicitly for the untrained model. Outside training the
        classifier must match ``Arch.class_num``; dropping a mismatched head is for fine-tuning."""
        arch = self.config["Arch"]
        has_arch_weights = bool(arch.get("pretrained")) or any(
            (cfg or {}).get("pretrained") for item in arch.get("models") or [] for cfg in item.values())
        if pretrained is not None and str(pretrained).lower() == "random":
            self.logger.warning("Global.pretrained_model=random: the model keeps its random "
                                "initialisation (results say nothing about a trained model)")
            return
        if not pretrained:
            if self.mode in ("eval", "infer") and not has_arch_weights:
                raise ConfigError(
                    f"{self.mode} needs trained weights: pass -o Global.pretrained_model="
                    f"{os.path.join(self.output_dir, 'best_model')} (any .pdparams prefix), or "
                    f"-o Global.pretrained_model=random to {self.mode} an untrained model on purpose")
            return
        path = str(pretrained)
        path = path if path.endswith(".pdparams") else path + ".pdparams"
        verify_params_file(path)
        state = load_checkpoint_file(path)
        try:
            load_state_dict_checked(self.model, state, drop_head_if_mismatch=self.mode == "train")
        except CheckpointError as e:
            why = ("" if self.mode == "train" else
                   f" Outside training the classifier must match Arch.class_num "
                   f"({self.class_num}); only training drops a mismatched head (fine-tuning).")
            raise CheckpointError(f"Global.pretrained_model={pretrained}: {e}.{why}") from None
        self.logger.info(f"loaded pretrained weights from {pretrained}")

    def _apply_to_static(self, image_shape):
        """Train through ``paddle.jit.to_static`` (PaddleClas's ``Global.to_static``)."""
        from paddle.static import InputSpec
        spec = None
        if image_shape:
            spec = [InputSpec([None] + [int(s) for s in image_shape], "float32", "x")]
            spec[0].stop_gradient = True
        self.model = paddle.jit.to_static(self.model, input_spec=spec)
        self.logger.info(f"training under paddle.jit.to_static with input spec {spec}")

    def _setup_device(self, device):
        device = str(device or "cpu").lower()
        if device not in ("cpu", "gpu"):
            raise ConfigError(f"Global.device must be 'cpu' or 'gpu', got {device!r}")
        if device == "gpu" and not paddle.device.is_compiled_with_cuda():
            msg = ("Global.device is 'gpu' but this Paddle build has no CUDA support: running on CPU "
                   "(install paddlepaddle-gpu, or pass -o Global.device=cpu to silence this)")
            warnings.warn(msg)
            print(f"[ppvision_hybrid] WARNING {msg}")
            device = "cpu"
        if device == "gpu":
            check_gpu_kernels(dist.ParallelEnv().dev_id)  # a wheel without code for this GPU computes garbage
            paddle.set_device(f"gpu:{dist.ParallelEnv().dev_id}")
        else:
            paddle.set_device("cpu")
        self.device = device

    def _check_labels(self, dataset, where):
        problem = dataset.label_range_problem(self.class_num)
        if problem:
            raise ConfigError(f"{where}: {problem}")

    # ---- checkpoints --------------------------------------------------------------------------
    def _rng_states(self):
        return {"python": random.getstate(), "numpy": np.random.get_state(),
                "paddle": pickle.dumps(paddle.get_rng_state())}

    def _set_rng_states(self, s):
        if not s:
            return
        random.setstate(s["python"])
        np.random.set_state(s["numpy"])
        paddle.set_rng_state(pickle.loads(s["paddle"]))

    def _states(self, epoch):
        return {"epoch": epoch, "global_step": self.global_step, "arch": self.arch_name,
                "metric": self.best["metric"], "best": dict(self.best),
                "lr_state": self.lr_scheduler.state_dict(), "rng": self._rng_states(),
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "world_size": self.world_size, "schedule": self._schedule()}

    def _schedule(self):
        """What lays out the LR schedule; a resume compares it with the checkpoint's."""
        return {"Global.epochs": self.epochs, "iterations per epoch": self.iters_per_epoch,
                "Global.update_freq": self.update_freq,
                "Optimizer": copy.deepcopy(self.config.get("Optimizer"))}

    def _schedule_changes(self, saved):
        def flat(d, path=""):
            if isinstance(d, dict):
                return {k2: v2 for k, v in d.items() for k2, v2 in flat(v, f"{path}.{k}" if path else str(k)).items()}
            return {path: d}
        before, now = flat(saved or {}), flat(self._schedule())
        return [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                if before.get(k) != now.get(k)]

    def _non_finite_loss(self, value, epoch, it):
        """``Global.nan_policy``: ``stop`` (default) raises :class:`TrainingError` naming the
        step; ``skip`` drops the batch (its gradients included) and returns True."""
        where = (f"epoch {epoch}, iteration {it} of {self.iters_per_epoch} (global step "
                 f"{self.global_step})")
        if str(self.config["Global"].get("nan_policy", "stop")) == "skip":
            self.optimizer.clear_grad()
            self.logger.warning(f"non-finite loss ({value}) at {where}: batch skipped "
                                f"(Global.nan_policy=skip)")
            return True
        latest = os.path.join(self.output_dir, "latest")
        raise TrainingError(
            f"non-finite loss ({value}) at {where}: training stopped, nothing of this epoch was "
            f"saved. Usual causes: a learning rate too high (Optimizer.lr), no warmup, AMP "
            f"overflow. Resume from the last good checkpoint with -o Global.checkpoints={latest} "
            f"after the fix, or set Global.nan_policy=skip to skip such batches")

    def _check_finite_weights(self, epoch):
        bad = [k for k, v in self.model.state_dict().items()
               if paddle.is_floating_point(v) and not bool(paddle.isfinite(v).all())]
        if bad:
            raise TrainingError(f"the weights hold non-finite values after epoch {epoch} "
                                f"({len(bad)} tensors, e.g. {bad[:3]}): nothing of this epoch was "
                                f"saved (lower Optimizer.lr and resume from the last checkpoint)")

    def _save(self, epoch, is_best):
        """``epoch_N`` (or ``latest`` between save intervals), then ``best_model``, then
        ``latest``: the record of a new best is published only after its files."""
        self._check_finite_weights(epoch)
        if self.rank != 0:
            return
        g = self.config["Global"]
        save_interval = int(g.get("save_interval", 1) or 1)
        ema_state = self.ema.state_dict() if self.ema else None
        latest = os.path.join(self.output_dir, "latest")
        args = (self.model.state_dict(), optimizer_state_to_structured(self.optimizer.state_dict(), self.model),
                self._states(epoch), ema_state)
        if epoch % save_interval == 0 or epoch == self.epochs:
            prefix = save_checkpoint(os.path.join(self.output_dir, f"epoch_{epoch}"), *args)
        else:
            prefix = save_checkpoint(latest, *args)
        if is_best:
            copy_checkpoint(prefix, os.path.join(self.output_dir, "best_model"))
        if prefix != latest:
            copy_checkpoint(prefix, latest)
        self.logger.info(f"saved checkpoint {prefix} (latest -> epoch {epoch})")

    def _resume(self, prefix):
        states = load_resume_states(prefix, self.model, self.optimizer, self.ema, self.arch_name)
        self.start_epoch = int(states["epoch"])
        self.global_step = int(states.get("global_step", 0))
        self.best = dict(states.get("best") or {"metric": states.get("metric", 0.0), "epoch": 0})
        if states.get("lr_state"):
            self.lr_scheduler.set_state_dict(states["lr_state"])
        if self.scaler is not None and states.get("scaler"):
            self.scaler.load_state_dict(states["scaler"])
        if states.get("world_size", 1) == self.world_size:
            self._set_rng_states(states.get("rng"))
        changes = self._schedule_changes(states.get("schedule")) if states.get("schedule") else []
        if changes:
            self.logger.warning(f"resuming {prefix} with a changed schedule: {'; '.join(changes)}. "
                                f"Training continues from step {self.global_step} with the new "
                                f"settings (the LR schedule is laid out again)")
        folder = os.path.dirname(prefix) or "."
        if self.rank == 0 and os.path.realpath(folder) == os.path.realpath(self.output_dir):
            note = repair_best_model(folder, states,
                                     prefix[:-len(".pdparams")] if prefix.endswith(".pdparams") else prefix)
            if note:
                self.logger.warning(note)
        if self.start_epoch >= self.epochs:
            self.logger.warning(f"checkpoint {prefix} already finished epoch {self.start_epoch} of "
                                f"{self.epochs}: nothing left to train (raise Global.epochs)")
        self.logger.info(f"resumed from {prefix}: epoch {self.start_epoch} done, step "
                         f"{self.global_step}, lr {self.lr_scheduler.get_lr():.6g}")

    # ---- forward helpers ----------------------------------------------------------------------
    def _model_input(self, images):
        """A batch as a tensor; float16 batches (``NormalizeImage output_fp16``, PaddleClas's AMP O2
        recipe) become float32 when the model runs in fp32."""
        images = paddle.to_tensor(images) if not isinstance(images, paddle.Tensor) else images
        if images.dtype == paddle.float16 and self.amp_level != "O2":
            images = images.astype("float32")
        return images

    def _metric_input(self, metric, out):
        """DistillationTopkAcc picks its own member; other metrics score the primary output."""
        if isinstance(metric, DistillationTopkAcc):
            return out.detach() if not isinstance(out, dict) else {k: v.detach() for k, v in out.items()}
        return primary_output(self.model, out).detach()

    def _autocast(self):
        if self.amp_level:
            return paddle.amp.auto_cast(level=self.amp_level)
        return paddle.amp.auto_cast(enable=False)

    # ---- train ----------------------------------------------------------------------------------
    def _epoch_batches(self, count):
        """``count`` training batches; the loader restarts when it runs out before."""
        served = 0
        while served < count:
            for batch in self.train_loader:
                yield batch
                served += 1
                if served >= count:
                    return
            if served == 0:
                raise RuntimeError("DataLoader.Train yields no batches (fewer images than one "
                                   "batch with drop_last: True?)")

    def train(self):
        g = self.config["Global"]
        print_step = int(g.get("print_batch_step", 10) or 10)
        eval_interval = int(g.get("eval_interval", 1) or 1)
        start_eval = int(g.get("start_eval_epoch", 0) or 0)
        iters, freq = self.iters_per_epoch, self.update_freq
        total_iters = iters * (self.epochs - self.start_epoch)
        mem_info = bool(g.get("print_mem_info", False))
        run_start, done_iters = time.time(), 0
        for epoch in range(self.start_epoch + 1, self.epochs + 1):
            if hasattr(self.train_sampler, "set_epoch"):
                self.train_sampler.set_epoch(epoch)
            self.train_model.train()
            for m in self.train_metrics:
                m.reset()
            epoch_start, seen, loss_sum = time.time(), 0, 0.0
            for it, (images, labels) in enumerate(self._epoch_batches(iters)):
                images = self._model_input(images)
                with self._autocast():
                    out = self.train_model(images)
                    losses = self.train_loss(out, labels)
                loss = losses["loss"]
                loss_value = float(loss)
                if not np.isfinite(loss_value):
                    if self._non_finite_loss(loss_value, epoch, it):
                        continue
                scaled = loss / freq if freq > 1 else loss
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
                lr_now = self.lr_scheduler.get_lr()
                if (it + 1) % freq == 0:
                    if self.scaler is not None:
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
                    else:
                        self.optimizer.step()
                    self.optimizer.clear_grad()
                    self.lr_scheduler.step()
                    if self.ema is not None:
                        self.ema.update(self.model)
                    self.global_step += 1
                    fault_point("train step")
                done_iters += 1
                batch = images.shape[0]
                seen += batch
                loss_sum += loss_value * batch
                soft = labels.ndim == 2 and labels.shape[-1] > 1
                accs = {}
                if not soft:
                    for m in self.train_metrics:
                        accs.update(m.update(self._metric_input(m, out), labels))
                if it % print_step == 0 or it == iters - 1:
                    avg_iter = (time.time() - run_start) / done_iters
                    eta = avg_iter * (total_iters - done_iters)
                    terms = ", ".join(f"{k}: {float(v):.5f}" for k, v in losses.items())
                    acc_s = "".join(f", {k}: {v:.5f}" for k, v in accs.items())
                    self.logger.info(
                        f"[Train][Epoch {epoch}/{self.epochs}][Iter: {it}/{iters}] lr: {lr_now:.6g}, "
                        f"{terms}{acc_s}, batch_cost: {avg_iter:.4f}s, ips: "
                        f"{seen * self.world_size / max(time.time() - epoch_start, 1e-9):.2f} images/s, "
                        f"eta: {_fmt_time(eta)}{_memory_message() if mem_info else ''}")
                    self.vdl.add_scalar("train/loss", loss_value, self.global_step)
                    self.vdl.add_scalar("train/lr", lr_now, self.global_step)
            epoch_time = time.time() - epoch_start
            summary = {"loss": loss_sum / max(seen, 1)}
            for m in self.train_metrics:
                if m.total:
                    summary.update(m.accumulate())
            self.logger.info(f"[Train][Epoch {epoch}/{self.epochs}][Avg] " +
                             ", ".join(f"{k}: {v:.5f}" for k, v in summary.items()) +
                             f", time: {epoch_time:.1f}s, ips: {seen * self.world_size / max(epoch_time, 1e-9):.2f} images/s")
            is_best = False
            if self.eval_loader is not None and epoch % eval_interval == 0 and epoch > start_eval:
                result = self.eval(epoch)
                top1 = result.get("top1", 0.0)
                if top1 > self.best["metric"]:
                    self.best = {"metric": top1, "epoch": epoch}
                    is_best = True
                self.logger.info(f"[Eval][Epoch {epoch}] best top1: {self.best['metric']:.5f} "
                                 f"(epoch {self.best['epoch']})")
                if self.ema is not None:
                    backup = {k: v.clone() for k, v in self.model.state_dict().items()}
                    self.model.set_state_dict(self.ema.state_dict())
                    ema_result = self.eval(epoch, tag="Eval EMA")
                    self.model.set_state_dict(backup)
                    self.vdl.add_scalar("eval_ema/top1", ema_result.get("top1", 0.0), epoch)
                self.vdl.add_scalar("eval/top1", top1, epoch)
            self._save(epoch, is_best)
        self.vdl.close()
        return self.best

    # ---- eval -----------------------------------------------------------------------------------
    @paddle.no_grad()
    def eval(self, epoch=0, tag="Eval"):
        model = self.model
        model.eval()
        for m in self.eval_metrics:
            m.reset()
        n_total = len(self.eval_dataset)
        # DistributedBatchSampler pads the index list to a multiple of the world size; count each
        # image once by dropping this rank's padded tail.
        valid = len(range(self.rank, n_total, self.world_size))
        seen, loss_sum, start = 0, 0.0, time.time()
        iters = len(self.eval_loader)
        print_step = int(self.config["Global"].get("print_batch_step", 10) or 10)
        for it, (images, labels) in enumerate(self.eval_loader):
            keep = min(images.shape[0], valid - seen)
            if keep <= 0:
                break
            images, labels = self._model_input(images[:keep]), labels[:keep]
            with self._autocast():
                logits = primary_output(model, model(images))
            logits = logits.astype("float32")
            if self.eval_loss is not None:
                loss_sum += float(self.eval_loss(logits, labels)["loss"]) * keep
            for m in self.eval_metrics:
                m.update(logits, labels)
            seen += keep
            if it % print_step == 0:
                self.logger.info(f"[{tag}][Epoch {epoch}][Iter: {it}/{iters}] "
                                 f"ips: {seen / max(time.time() - start, 1e-9):.2f} images/s")
        counts = [seen, loss_sum] + [m.correct[k] for m in self.eval_metrics for k in m.topk]
        if self.world_size > 1:
            t = paddle.to_tensor(np.array(counts, np.float64))
            dist.all_reduce(t)
            counts = t.numpy().tolist()
        total = max(counts[0], 1)
        result, i = {"loss": counts[1] / total}, 2
        for m in self.eval_metrics:
            for k in m.topk:
                result[f"top{k}"] = counts[i] / total
                i += 1
        self.logger.info(f"[{tag}][Epoch {epoch}][Avg] " + ", ".join(f"{k}: {v:.5f}" for k, v in result.items())
                         + f", images: {int(counts[0])}, time: {time.time() - start:.1f}s")
        if self.mode == "train":
            self.train_model.train()
        return result

    # ---- infer ----------------------------------------------------------------------------------
    @staticmethod
    def _image_list(path):
        if os.path.isfile(path):
            return [path]
        if os.path.isdir(path):
            files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names
                           if f.lower().endswith(IMAGE_EXTS))
            if files:
                return files
            raise FileNotFoundError(f"Infer.infer_imgs: no images ({', '.join(IMAGE_EXTS)}) under {path}")
        raise FileNotFoundError(f"Infer.infer_imgs: {path} does not exist")

    @staticmethod
    def load_label_names(path, delimiter=None):
        if not path:
            return None
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Infer.PostProcess.class_id_map_file not found: {path}")
        names = {}
        with open(path, "r", encoding="utf-8") as f:
            for line in f:
                parts = line.strip().split(delimiter, 1)
                if len(parts) == 2:
                    names[int(parts[0])] = parts[1].strip()
        return names

    @paddle.no_grad()
    def infer(self, infer_imgs=None):
        """Top-k predictions for an image or every image under a folder; prints and returns them."""
        cfg = self.config.get("Infer") or {}
        files = self._image_list(infer_imgs or cfg.get("infer_imgs") or "")
        ops = build_transforms(cfg.get("transforms"))
        post = cfg.get("PostProcess") or {}
        topk = int(post.get("topk", 5))
        names = self.load_label_names(post.get("class_id_map_file"), post.get("delimiter"))
        batch_size = int(cfg.get("batch_size", 8) or 8)
        self.model.eval()
        results, failed = [], InputFailures("infer")  # a bad image is reported and skipped
        for start in range(0, len(files), batch_size):
            chunk, batch = [], []
            for path in files[start:start + batch_size]:
                try:
                    with open(path, "rb") as f:
                        img = apply_transforms(f.read(), ops)
                except Exception as err:
                    failed.record(path, err)
                    continue
                if img.ndim == 3 and not is_chw(img):
                    img = img.transpose((2, 0, 1))
                batch.append(img)
                chunk.append(path)
            if not batch:
                continue
            logits = primary_output(self.model, self.model(paddle.to_tensor(np.stack(batch).astype("float32"))))
            probs = F.softmax(logits, axis=-1).numpy()
            for path, p in zip(chunk, probs):
                ids = np.argsort(-p)[:topk].tolist()
                res = {"class_ids": ids, "scores": [round(float(p[i]), 5) for i in ids], "file_name": path}
                if names is not None:
                    res["label_names"] = [names.get(i, "") for i in ids]
                results.append(res)
                print(res)
        failed.raise_if_any(len(files))
        return results

    # ---- export ---------------------------------------------------------------------------------
    def export(self, save_dir=None, dynamic_hw=False):
        """Paddle Inference model of the model (the ``infer_model_name`` member of a
        DistillationModel) plus ``inference.yml`` (pre-processing from ``Infer.transforms``,
        Topk post-processing with the label list), PaddleClas's ``export_for_fd`` layout."""
        from ..export import export_inference_model
        g = self.config["Global"]
        save_dir = save_dir or g.get("save_inference_dir") or "./inference"
        image_shape = tuple(int(s) for s in (g.get("image_shape") or [3, 224, 224]))
        with_softmax = bool(self.config["Arch"].get("infer_add_softmax", True))
        model = self.model.member() if isinstance(self.model, DistillationModel) else self.model
        prefix = export_inference_model(model, save_dir, image_shape, with_softmax=with_softmax,
                                        dynamic_hw=dynamic_hw, infer_config=self._infer_config())
        written = sorted(f for f in os.listdir(save_dir) if f.startswith(os.path.basename(prefix)))
        print(f"[ppvision_hybrid] exported {self.arch_name} to {save_dir}: {written}")
        return prefix

    def _infer_config(self):
        """What ``inference.yml`` records: ``Infer.transforms`` (the default ImageNet evaluation
        pre-processing without them), the Topk settings, the label names (from
        ``class_id_map_file`` when it exists) and the model name (``Global.pdx_model_name`` or
        the exported model's registered name)."""
        from ..inference_yml import default_transforms
        g = self.config["Global"]
        infer = self.config.get("Infer") or {}
        post = dict(infer.get("PostProcess") or {})
        names = None
        if post.get("class_id_map_file") and os.path.isfile(str(post["class_id_map_file"])):
            table = self.load_label_names(post["class_id_map_file"], post.get("delimiter"))
            names = [table.get(i, str(i)) for i in range(self.class_num)]
        model = self.model.member() if isinstance(self.model, DistillationModel) else self.model
        return {"transforms": infer.get("transforms") or default_transforms(g.get("image_shape") or (3, 224, 224)),
                "topk": int(post.get("topk", 5)), "label_list": names,
                "model_name": g.get("pdx_model_name") or getattr(model, "model_name", self.arch_name)}
