"""Entry functions for ``hubconf.py`` (paddle.hub) and the optional PaddleHub wrapper."""
from . import registry, weights

__all__ = ["make_entry", "entry_doc"]


def entry_doc(name: str) -> str:
    """Help text for one model: family, paper, counts and available weights."""
    spec = registry.get_model_spec(name)
    ref = spec.reference
    lines = [f"{name}: {spec.family} backbone" + (f" ({spec.paper})" if spec.paper else "") + ".", ""]
    if "params" in ref:
        lines.append(f"Reference: {ref['params'] / 1e6:.2f}M parameters, {ref['macs'] / 1e9:.2f} GMACs at "
                     f"{'x'.join(map(str, spec.default_input))} ({ref.get('source', 'paper')}).")
    entries = weights.list_weights(name)
    if entries:
        lines.append("Weights: " + "; ".join(f"{e.tag} ({e.source}, sha256 {e.sha256[:12]}…)" for e in entries))
    else:
        lines.append("Weights: none registered yet (pretrained=True raises; pass a local .pdparams path).")
    lines += ["",
              "Args:",
              "    pretrained (bool | str): False, True (registered weights, sha256-verified) or a local path.",
              "    class_num (int): classifier width (default 1000); a checkpoint with another width",
              "        loads without its head, with a message.",
              "    **kwargs: any constructor argument (drop_path_rate, features_only, out_indices, ...).",
              "",
              "Returns:",
              f"    paddle.nn.Layer: the {name} model."]
    return "\n".join(lines)


def make_entry(name: str):
    def entry(pretrained=False, class_num=1000, **kwargs):
        return registry.create_model(name, pretrained=pretrained, class_num=class_num, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = entry_doc(name)
    return entry
