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

__all__ = ["ConfigError", "load_config", "parse_overrides", "apply_overrides", "validate_config",
           "get_config", "SCHEMA"]


class ConfigError(ValueError):
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
               "use_visualdl", "image_shape", "save_inference_dir", "seed", "to_static", "use_dali")
#: PaddleClas keys accepted only with the value this engine implements (never silently ignored)
FIXED_GLOBAL_VALUES = {"to_static": (False, "training runs in dygraph; export always uses to_static"),
                       "use_dali": (False, "DALI data loading is not implemented")}
AMP_KEYS = ("use_amp", "level", "scale_loss", "use_dynamic_loss_scaling", "use_fp16_test",
            "use_promote")
EMA_KEYS = ("decay",)
ARCH_ENGINE_KEYS = ("name", "class_num", "pretrained", "use_ssld", "infer_add_softmax")
SECTIONS = ("Global", "AMP", "EMA", "Arch", "Loss", "Optimizer", "DataLoader", "Metric", "Infer")
DATALOADER_PART_KEYS = ("dataset", "sampler", "loader")
DATASET_KEYS = ("name", "image_root", "cls_label_path", "transform_ops", "batch_transform_ops",
                "delimiter", "relabel")
SAMPLER_KEYS = ("name", "batch_size", "drop_last", "shuffle")
LOADER_KEYS = ("num_workers", "use_shared_memory")
INFER_KEYS = ("infer_imgs", "batch_size", "transforms", "PostProcess")
POSTPROCESS_KEYS = ("name", "topk", "class_id_map_file", "delimiter")

#: a compact view of the schema, printed in docs and used in messages
SCHEMA = {"Global": GLOBAL_KEYS, "AMP": AMP_KEYS, "EMA": EMA_KEYS,
          "Arch": ARCH_ENGINE_KEYS + ("<any model factory kwarg>",),
          "Loss": ("Train", "Eval"), "Optimizer": "see OPTIMIZER_KEYS / LR_KEYS",
          "DataLoader": ("Train", "Eval"), "Metric": ("Train", "Eval"), "Infer": INFER_KEYS}


def _unknown(path, key, accepted):
    accepted = [a for a in accepted]
    close = difflib.get_close_matches(str(key), [str(a) for a in accepted], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    where = f"{path}.{key}" if path else str(key)
    return ConfigError(f"unknown config key '{where}'.{hint} Accepted keys"
                       f"{' in ' + path if path else ''}: {', '.join(map(str, accepted))}")


def _check_keys(mapping, path, accepted):
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise ConfigError(f"'{path}' must be a mapping, got {type(mapping).__name__}: {mapping!r}")
    for key in mapping:
        if key not in accepted:
            raise _unknown(path, key, accepted)


def _signature_keys(cls):
    params = inspect.signature(cls.__init__).parameters
    return tuple(n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _check_op_list(ops, path, registry, extra_names=(), extra_keys=()):
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
        if name not in registry:
            raise ConfigError(f"unknown op '{name}' at '{path}[{i}]'. Accepted: {', '.join(sorted(registry))}")
        _check_keys(kwargs, f"{path}[{i}].{name}", _signature_keys(registry[name]) + tuple(extra_keys))


def validate_config(cfg):
    """Raise :class:`ConfigError` on the first key the engine does not know."""
    from ..data import BATCH_OPS, SAMPLERS, TRANSFORM_OPS
    from ..data.dataset import DATASETS
    from ..losses import LOSSES
    from ..metrics import METRICS
    from ..optim import LR_KEYS, OPTIMIZER_KEYS

    if not isinstance(cfg, dict):
        raise ConfigError(f"a config must be a mapping of sections ({', '.join(SECTIONS)})")
    _check_keys(cfg, "", SECTIONS)
    _check_keys(cfg.get("Global"), "Global", GLOBAL_KEYS)
    for key, (allowed, why) in FIXED_GLOBAL_VALUES.items():
        value = (cfg.get("Global") or {}).get(key)
        if value not in (None, allowed):
            raise ConfigError(f"Global.{key}: only {allowed} is supported ({why}), got {value!r}")
    _check_keys(cfg.get("AMP"), "AMP", AMP_KEYS)
    _check_keys(cfg.get("EMA"), "EMA", EMA_KEYS)
    arch = cfg.get("Arch")
    if not isinstance(arch, dict) or "name" not in arch:
        raise ConfigError("config needs 'Arch.name' (a registered model, see ppvision_hybrid.list_models())")

    for section, registry in (("Loss", LOSSES), ("Metric", METRICS)):
        _check_keys(cfg.get(section), section, ("Train", "Eval"))
        for mode in ("Train", "Eval"):
            _check_op_list((cfg.get(section) or {}).get(mode), f"{section}.{mode}", registry,
                           extra_keys=("weight",) if section == "Loss" else ())
    opt = cfg.get("Optimizer")
    if opt is not None:
        if not isinstance(opt, dict) or opt.get("name") not in OPTIMIZER_KEYS:
            raise ConfigError(f"Optimizer.name must be one of {sorted(OPTIMIZER_KEYS)}, got "
                              f"{(opt or {}).get('name')!r}")
        _check_keys(opt, "Optimizer", OPTIMIZER_KEYS[opt["name"]])
        lr = opt.get("lr")
        if isinstance(lr, dict):
            if lr.get("name", "Constant") not in LR_KEYS:
                raise ConfigError(f"Optimizer.lr.name must be one of {sorted(LR_KEYS)}, got {lr.get('name')!r}")
            _check_keys(lr, "Optimizer.lr", LR_KEYS[lr.get("name", "Constant")])
        if isinstance(opt.get("regularizer"), dict):
            _check_keys(opt["regularizer"], "Optimizer.regularizer", ("name", "coeff"))

    loaders = cfg.get("DataLoader")
    _check_keys(loaders, "DataLoader", ("Train", "Eval"))
    for mode, part in (loaders or {}).items():
        base = f"DataLoader.{mode}"
        _check_keys(part, base, DATALOADER_PART_KEYS)
        if part is None:
            continue
        ds = part.get("dataset")
        if not isinstance(ds, dict):
            raise ConfigError(f"'{base}.dataset' is required (name, image_root, cls_label_path, transform_ops)")
        _check_keys(ds, f"{base}.dataset", DATASET_KEYS)
        if ds.get("name") not in DATASETS:
            raise ConfigError(f"'{base}.dataset.name' must be one of {sorted(DATASETS)}, got {ds.get('name')!r}")
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
        _check_keys(part.get("sampler"), f"{base}.sampler", SAMPLER_KEYS)
        if part.get("sampler") and part["sampler"].get("name", SAMPLERS[0]) not in SAMPLERS:
            raise ConfigError(f"'{base}.sampler.name' must be one of {list(SAMPLERS)}")
        _check_keys(part.get("loader"), f"{base}.loader", LOADER_KEYS)

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
        cfg = yaml.load(f, Loader=_Loader)
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
