"""PaddleClas-schema YAML configs: loading, ``-o Section.key=value`` overrides and strict
validation.

Every key is checked against the schema below; an unknown key is a :class:`ConfigError` that
names the key's full path and lists the keys accepted there (never silently ignored). Transform
ops, batch ops, losses, metrics, optimizers and LR schedules are validated against the
arguments their implementations accept. ``Arch`` keys other than the engine's own are passed to
the model factory, which rejects what the model does not take.
"""
import copy
import difflib
import inspect
import os
import re

import yaml

from ..cli_errors import UserError

__all__ = ["ConfigError", "load_config", "parse_overrides", "apply_overrides", "validate_config",
           "get_config", "SCHEMA"]


class ConfigError(UserError, ValueError):
    """A config that does not fit the schema (unknown key, wrong type, missing required key)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` / ``5E+2`` as floats (YAML 1.1 needs a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _parse_value(text):
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


GLOBAL_KEYS = ("checkpoints", "pretrained_model", "output_dir", "device", "save_interval",
               "eval_during_train", "eval_interval", "start_eval_epoch", "epochs", "print_batch_step",
               "use_visualdl", "image_shape", "image_channel", "save_inference_dir", "seed",
               "to_static", "use_dali", "update_freq", "print_mem_info", "log_ranks", "class_num",
               "eval_mode", "train_mode", "use_multilabel", "export_for_fd",
               "uniform_output_enabled", "pdx_model_name", "distributed", "iter_per_epoch",
               # ours: what a non-finite loss does; whether a new run may replace old checkpoints
               "nan_policy", "overwrite")
NAN_POLICIES = ("stop", "skip")
#: PaddleClas features this engine deliberately does not implement: key -> (value(s) accepted,
#: what the other values would turn on). A config asking for them is refused, naming the feature.
FIXED_GLOBAL_VALUES = {
    "use_dali": ((False,), "NVIDIA DALI data loading (a CUDA-only loader) is not implemented"),
    "eval_mode": (("classification",), "retrieval and face-recognition evaluation are not implemented"),
    "train_mode": ((None,), "progressive training (EfficientNetV2's growing image size) is not implemented"),
    "use_multilabel": ((False,), "multi-label classification is not implemented"),
    "uniform_output_enabled": ((False,), "PaddleX's uniform output layout (an exported model per "
                               "saved checkpoint) is not implemented"),
}
DEVICES = ("cpu", "gpu")
#: PaddleClas devices that exist but are not supported here
OTHER_DEVICES = ("xpu", "npu", "mlu", "ascend", "intel_gpu", "mps")
AMP_KEYS = ("use_amp", "level", "scale_loss", "use_dynamic_loss_scaling", "use_fp16_test",
            "use_promote")
EMA_KEYS = ("decay",)
ARCH_ENGINE_KEYS = ("name", "class_num", "pretrained", "use_ssld", "infer_add_softmax")
#: PaddleClas's model-independent Arch keys; the model factories take them (see models/base.py)
ARCH_GENERIC_KEYS = ("use_sync_bn", "data_format", "use_fused_attn", "use_fused_linear")
REFUSED_ARCH_KEYS = {"use_ml_decoder": "the ML-Decoder head is not supported",
                     "Backbone": "recognition models (RecModel: Backbone/Neck/Head) are not supported",
                     "Head": "recognition models (RecModel: Backbone/Neck/Head) are not supported"}
SECTIONS = ("Global", "AMP", "EMA", "Arch", "Loss", "Optimizer", "DataLoader", "Metric", "Infer")
REFUSED_SECTIONS = {"Slim": "quantization and pruning (PaddleSlim) are not supported",
                    "UnLabelLoss": "semi-supervised training is not supported"}
DATALOADER_PART_KEYS = ("dataset", "sampler", "loader")
_DATASET_COMMON = ("name", "image_root", "cls_label_path", "transform_ops", "batch_transform_ops",
                   "delimiter")
DATASET_KEYS = {"ImageNetDataset": _DATASET_COMMON + ("relabel",),
                "DigitsDataset": _DATASET_COMMON + ("relabel",),
                "MultiScaleDataset": _DATASET_COMMON}
_BATCH_SAMPLER = ("name", "batch_size", "drop_last", "shuffle")
SAMPLER_KEYS = {"DistributedBatchSampler": _BATCH_SAMPLER, "BatchSampler": _BATCH_SAMPLER,
                "RASampler": _BATCH_SAMPLER + ("num_repeats",),
                "MultiScaleSampler": ("name", "scales", "first_bs", "divided_factor", "is_training",
                                      "shuffle", "seed")}
LOADER_KEYS = ("num_workers", "use_shared_memory")
INFER_KEYS = ("infer_imgs", "batch_size", "transforms", "PostProcess")
POSTPROCESS_KEYS = ("name", "topk", "class_id_map_file", "delimiter")

#: a compact view of the schema, printed in docs and used in messages
SCHEMA = {"Global": GLOBAL_KEYS, "AMP": AMP_KEYS, "EMA": EMA_KEYS,
          "Arch": ARCH_ENGINE_KEYS + ARCH_GENERIC_KEYS + ("<any model factory kwarg>",),
          "Loss": ("Train", "Eval"), "Optimizer": "see OPTIMIZER_KEYS / LR_KEYS",
          "DataLoader": ("Train", "Eval"), "Metric": ("Train", "Eval"), "Infer": INFER_KEYS}


def _unknown(path, key, accepted):
    accepted = [a for a in accepted]
    close = difflib.get_close_matches(str(key), [str(a) for a in accepted], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    where = f"{path}.{key}" if path else str(key)
    return ConfigError(f"unknown config key '{where}'.{hint} Accepted keys"
                       f"{' in ' + path if path else ''}: {', '.join(map(str, accepted))}")


def _check_keys(mapping, path, accepted, refused=None):
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise ConfigError(f"'{path}' must be a mapping, got {type(mapping).__name__}: {mapping!r}")
    for key in mapping:
        if refused and key in refused:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"'{where}' is not supported: {refused[key]}")
        if key not in accepted:
            raise _unknown(path, key, accepted)


def _signature_keys(cls):
    params = inspect.signature(cls.__init__).parameters
    return tuple(n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _check_op_list(ops, path, registry, extra_names=(), extra_keys=(), refused=None):
    if ops is None:
        return
    if not isinstance(ops, list):
        raise ConfigError(f"'{path}' must be a list of {{OpName: {{args}}}} entries")
    for i, item in enumerate(ops):
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"'{path}[{i}]' must be a one-key mapping {{OpName: {{args}}}}, got {item!r}")
        (name, kwargs), = item.items()
        if name in extra_names:
            continue
        if refused and name in refused:
            raise ConfigError(f"'{path}[{i}]': {name} is not supported: {refused[name]}")
        if name not in registry:
            close = difflib.get_close_matches(str(name), list(registry), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown op '{name}' at '{path}[{i}]'.{hint} Accepted: {', '.join(sorted(registry))}")
        _check_keys(kwargs, f"{path}[{i}].{name}", _signature_keys(registry[name]) + tuple(extra_keys))


def _check_global(g):
    _check_keys(g, "Global", GLOBAL_KEYS)
    g = g or {}
    for key, (allowed, feature) in FIXED_GLOBAL_VALUES.items():
        if key in g and g[key] not in allowed:
            raise ConfigError(f"Global.{key}={g[key]!r}: {feature} "
                              f"(accepted: {', '.join(map(repr, allowed))})")
    device = str(g.get("device", "cpu") or "cpu").lower()
    if device in OTHER_DEVICES:
        raise ConfigError(f"Global.device={device!r} is not supported: this engine runs on "
                          f"{' or '.join(DEVICES)}")
    if device not in DEVICES:
        raise ConfigError(f"Global.device must be one of {', '.join(DEVICES)}, got {g.get('device')!r}")
    if str(g.get("nan_policy", "stop")) not in NAN_POLICIES:
        raise ConfigError(f"Global.nan_policy must be one of {', '.join(NAN_POLICIES)}, got "
                          f"{g.get('nan_policy')!r}")
    if not isinstance(g.get("overwrite", False), bool):
        raise ConfigError(f"Global.overwrite must be True or False, got {g.get('overwrite')!r}")
    for key in ("epochs", "update_freq", "iter_per_epoch"):
        value = g.get(key, 1)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"Global.{key} must be a positive integer, got {value!r}")


def _check_arch(arch):
    if not isinstance(arch, dict) or "name" not in arch:
        raise ConfigError("config needs 'Arch.name' (a registered model, see ppvision_hybrid.list_models())")
    _check_keys({k: v for k, v in arch.items() if k in REFUSED_ARCH_KEYS}, "Arch", (), REFUSED_ARCH_KEYS)
    if arch["name"] == "DistillationModel":
        from .distillation import ARCH_KEYS
        _check_keys(arch, "Arch", ARCH_KEYS)
        for i, item in enumerate(arch.get("models") or []):
            if not isinstance(item, dict) or len(item) != 1:
                raise ConfigError(f"'Arch.models[{i}]' must be {{MemberName: {{name: <model>, ...}}}}")
            (member, cfg), = item.items()
            if not isinstance(cfg, dict) or "name" not in cfg:
                raise ConfigError(f"'Arch.models[{i}].{member}' needs a 'name' (a registered model)")


def _check_optimizer(opt):
    from ..optim import LR_KEYS, OPTIMIZER_KEYS
    if opt is None:
        return
    if isinstance(opt, list):
        raise ConfigError("Optimizer as a list (one optimizer per parameter scope) is not supported: "
                          "give one mapping with a name")
    if not isinstance(opt, dict) or opt.get("name") not in OPTIMIZER_KEYS:
        raise ConfigError(f"Optimizer.name must be one of {sorted(OPTIMIZER_KEYS)}, got "
                          f"{(opt or {}).get('name')!r}")
    _check_keys(opt, "Optimizer", OPTIMIZER_KEYS[opt["name"]])
    lr = opt.get("lr")
    if isinstance(lr, dict):
        name = lr.get("name")
        if name is None:
            _check_keys(lr, "Optimizer.lr", ("learning_rate",))
        elif name not in LR_KEYS:
            raise ConfigError(f"Optimizer.lr.name must be one of {sorted(LR_KEYS)}, got {name!r}")
        else:
            if name == "Constant" and (lr.get("warmup_epoch") or lr.get("warmup_start_lr")):
                raise ConfigError("Optimizer.lr.warmup_epoch: PaddleClas's Constant schedule has no "
                                  "warmup (it ignores the key); use name: ConstLR for a constant "
                                  "rate after a warmup")
            _check_keys(lr, "Optimizer.lr", LR_KEYS[name])
    if isinstance(opt.get("regularizer"), dict):
        _check_keys(opt["regularizer"], "Optimizer.regularizer", ("name", "coeff"))


def _check_loader_part(part, base):
    from ..data import BATCH_OPS, TRANSFORM_OPS
    _check_keys(part, base, DATALOADER_PART_KEYS)
    if part is None:
        return
    ds = part.get("dataset")
    if not isinstance(ds, dict):
        raise ConfigError(f"'{base}.dataset' is required (name, image_root, cls_label_path, transform_ops)")
    if ds.get("name") not in DATASET_KEYS:
        raise ConfigError(f"'{base}.dataset.name' must be one of {sorted(DATASET_KEYS)}, got {ds.get('name')!r}")
    _check_keys(ds, f"{base}.dataset", DATASET_KEYS[ds["name"]])
    _check_op_list(ds.get("transform_ops"), f"{base}.dataset.transform_ops", TRANSFORM_OPS)
    _check_op_list(ds.get("batch_transform_ops"), f"{base}.dataset.batch_transform_ops", BATCH_OPS,
                   extra_names=("OpSampler",))
    for i, item in enumerate(ds.get("batch_transform_ops") or []):
        if "OpSampler" in item:
            inner = item["OpSampler"] or {}
            _check_keys(inner, f"{base}.dataset.batch_transform_ops[{i}].OpSampler", tuple(BATCH_OPS))
            for name, kwargs in inner.items():
                _check_keys(kwargs, f"{base}.dataset.batch_transform_ops[{i}].OpSampler.{name}",
                            ("alpha", "prob"))
    sampler = part.get("sampler")
    if sampler is not None:
        name = (sampler or {}).get("name", "DistributedBatchSampler") if isinstance(sampler, dict) else None
        if name not in SAMPLER_KEYS:
            raise ConfigError(f"'{base}.sampler.name' must be one of {sorted(SAMPLER_KEYS)}, got {name!r}")
        _check_keys(sampler, f"{base}.sampler", SAMPLER_KEYS[name])
        if (name == "MultiScaleSampler") != (ds["name"] == "MultiScaleDataset"):
            raise ConfigError(f"'{base}': MultiScaleSampler and MultiScaleDataset go together "
                              f"(got sampler {name} with dataset {ds['name']})")
    _check_keys(part.get("loader"), f"{base}.loader", LOADER_KEYS)


#: values that must be numbers: (dotted path, int or float, minimum or None); "*" is any
#: DataLoader mode. None (or a missing key) means the default.
NUMBER_KEYS = (("Global.epochs", int, None), ("Global.save_interval", int, 1),
               ("Global.eval_interval", int, 1), ("Global.start_eval_epoch", int, 0),
               ("Global.print_batch_step", int, 1), ("Global.seed", int, None),
               ("Arch.class_num", int, 1), ("Optimizer.lr.learning_rate", float, 0),
               ("DataLoader.*.sampler.batch_size", int, 1), ("DataLoader.*.sampler.first_bs", int, 1),
               ("DataLoader.*.loader.num_workers", int, 0), ("Infer.batch_size", int, 1),
               ("Infer.PostProcess.topk", int, 1))


def _lookup(cfg, parts, where=()):
    """(dotted path, value) pairs for ``parts`` with "*" matching every key."""
    if not parts:
        return [(".".join(where), cfg)]
    if not isinstance(cfg, dict):
        return []
    head, rest = parts[0], parts[1:]
    keys = list(cfg) if head == "*" else [head] if head in cfg else []
    return [found for key in keys for found in _lookup(cfg[key], rest, where + (str(key),))]


def _check_weight_paths(cfg):
    """``Global.pretrained_model`` / ``Global.checkpoints`` are checkpoint prefixes or .pdparams
    files: a directory is named with what to pass instead."""
    g = cfg.get("Global") or {}
    for key in ("pretrained_model", "checkpoints"):
        value = g.get(key)
        if isinstance(value, str) and os.path.isdir(value):
            prefixes = sorted(f[:-len(".pdparams")] for f in os.listdir(value) if f.endswith(".pdparams"))
            example = os.path.join(value, prefixes[0] if prefixes else "best_model")
            found = f" (it holds {', '.join(prefixes[:5])})" if prefixes else " (it holds no .pdparams)"
            raise ConfigError(f"Global.{key}={value} is a directory{found}: give a checkpoint prefix "
                              f"such as {example} (the path without .pdparams) or a .pdparams file")


def _check_numbers(cfg):
    """Numbers are numbers (``Global.epochs=abc`` names the key) within their range."""
    for path, kind, minimum in NUMBER_KEYS:
        for where, value in _lookup(cfg, path.split(".")):
            if value is None or (kind is float and isinstance(value, dict)):  # lr: a schedule
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind is int:
                number = number and float(value).is_integer()
            if not number or (minimum is not None and value < minimum):
                need = "an integer" if kind is int else "a number"
                bound = f" >= {minimum}" if minimum is not None else ""
                raise ConfigError(f"{where} must be {need}{bound}, got {value!r}")


def validate_config(cfg):
    """Raise :class:`ConfigError` on the first key the engine does not know, or on a PaddleClas
    feature it does not implement (naming it)."""
    from ..data import TRANSFORM_OPS
    from ..losses import LOSSES, REFUSED_LOSSES
    from ..metrics import METRICS, REFUSED_METRICS

    if not isinstance(cfg, dict):
        raise ConfigError(f"a config must be a mapping of sections ({', '.join(SECTIONS)})")
    _check_keys(cfg, "", SECTIONS, REFUSED_SECTIONS)
    _check_numbers(cfg)
    _check_weight_paths(cfg)
    _check_global(cfg.get("Global"))
    _check_keys(cfg.get("AMP"), "AMP", AMP_KEYS)
    _check_keys(cfg.get("EMA"), "EMA", EMA_KEYS)
    _check_arch(cfg.get("Arch"))
    for section, registry, refused in (("Loss", LOSSES, REFUSED_LOSSES), ("Metric", METRICS, REFUSED_METRICS)):
        _check_keys(cfg.get(section), section, ("Train", "Eval"))
        for mode in ("Train", "Eval"):
            _check_op_list((cfg.get(section) or {}).get(mode), f"{section}.{mode}", registry,
                           extra_keys=("weight",) if section == "Loss" else (), refused=refused)
    _check_optimizer(cfg.get("Optimizer"))
    loaders = cfg.get("DataLoader")
    _check_keys(loaders, "DataLoader", ("Train", "Eval"),
                {"UnLabelTrain": "semi-supervised training is not supported"})
    for mode, part in (loaders or {}).items():
        _check_loader_part(part, f"DataLoader.{mode}")
    infer = cfg.get("Infer")
    _check_keys(infer, "Infer", INFER_KEYS)
    if infer:
        _check_op_list(infer.get("transforms"), "Infer.transforms", TRANSFORM_OPS)
        post = infer.get("PostProcess")
        _check_keys(post, "Infer.PostProcess", POSTPROCESS_KEYS)
        if post and post.get("name", "Topk") != "Topk":
            raise ConfigError(f"Infer.PostProcess.name must be 'Topk', got {post.get('name')!r}")
    return cfg


def parse_overrides(opts):
    """``["Global.epochs=2", ...]`` -> list of (dotted key, parsed value)."""
    pairs = []
    for opt in opts or []:
        if "=" not in opt:
            raise ConfigError(f"override '{opt}' must look like Section.key=value")
        key, value = opt.split("=", 1)
        pairs.append((key.strip(), _parse_value(value)))
    return pairs


def apply_overrides(cfg, opts):
    """PaddleClas ``-o`` semantics: dotted path, integer parts index lists, a missing final key is
    created (and then judged by :func:`validate_config`)."""
    for key, value in parse_overrides(opts):
        parts = key.split(".")
        node = cfg
        for i, part in enumerate(parts[:-1]):
            where = ".".join(parts[:i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override '{key}': '{where}' needs a list index < {len(node)}")
                node = node[int(part)]
            elif isinstance(node, dict):
                if part not in node or node[part] is None:
                    node[part] = {}
                node = node[part]
            else:
                raise ConfigError(f"override '{key}': '{where}' is a value, not a section")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"override '{key}': list index '{last}' out of range")
            node[int(last)] = value
        else:
            node[last] = value
    return cfg


def load_config(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, "r", encoding="utf-8") as f:
        try:
            cfg = yaml.load(f, Loader=_Loader)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    return cfg or {}


def get_config(path, overrides=None, validate=True):
    """Load ``path``, apply ``-o`` overrides, validate; returns a plain dict."""
    cfg = apply_overrides(copy.deepcopy(load_config(path)), overrides)
    if validate:
        try:
            validate_config(cfg)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return cfg
