"""``Arch.name: DistillationModel`` -- several registered models run on the same batch, their
outputs returned as ``{member name: logits}`` for the ``Distillation*`` losses (PaddleClas's
knowledge-distillation layout: Hinton et al. 2015 and its successors).

.. code-block:: yaml

    Arch:
      name: DistillationModel
      class_num: 1000
      freeze_params_list: [True, False]     # the teacher is frozen
      pretrained_list: [./teacher.pdparams, null]
      models:
        - Teacher: {name: TransXNet_S, pretrained: False}
        - Student: {name: MixFormer_B0}
      infer_model_name: Student             # what eval, infer and export use

A frozen member keeps its weights (no gradient) and stays in eval mode while the student
trains, so its BatchNorm statistics and drop-path do not change; PaddleClas only stops its
gradients (its BatchNorms keep updating their running statistics).
"""
import paddle.nn as nn

__all__ = ["DistillationModel", "ARCH_KEYS"]

#: Arch keys of a DistillationModel config
ARCH_KEYS = ("name", "class_num", "models", "pretrained_list", "freeze_params_list",
             "infer_model_name", "use_sync_bn", "data_format", "use_fused_attn", "use_fused_linear",
             "infer_add_softmax")


class DistillationModel(nn.Layer):
    def __init__(self, models, build_member, pretrained_list=None, freeze_params_list=None,
                 infer_model_name=None):
        """``build_member(arch_cfg)`` builds one member from its ``{name: ..., **kwargs}``."""
        super().__init__()
        from ..weights import load_checkpoint_file, load_state_dict_checked
        if not isinstance(models, list) or not models:
            raise ValueError("Arch.models must be a list of {MemberName: {name: <model>, ...}}")
        freeze = list(freeze_params_list or [False] * len(models))
        pretrained = list(pretrained_list or [None] * len(models))
        if len(freeze) != len(models) or len(pretrained) != len(models):
            raise ValueError(f"Arch.freeze_params_list and Arch.pretrained_list need one entry per "
                             f"model ({len(models)})")
        self.member_names, self.frozen = [], []
        for item, frozen, weights in zip(models, freeze, pretrained):
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(f"each Arch.models entry must be {{MemberName: {{name: ...}}}}, got {item!r}")
            (member, cfg), = item.items()
            layer = build_member(dict(cfg or {}))
            if weights:
                path = str(weights)
                load_state_dict_checked(layer, load_checkpoint_file(
                    path if path.endswith(".pdparams") else path + ".pdparams"))
            if frozen:
                for p in layer.parameters():
                    p.stop_gradient = True
                layer.eval()
            self.add_sublayer(member, layer)
            self.member_names.append(member)
            self.frozen.append(bool(frozen))
        self.infer_model_name = infer_model_name or self.member_names[-1]
        if self.infer_model_name not in self.member_names:
            raise ValueError(f"Arch.infer_model_name '{self.infer_model_name}' is not one of the "
                             f"models {self.member_names}")

    def member(self, name=None):
        return getattr(self, name or self.infer_model_name)

    def train(self):
        super().train()
        for name, frozen in zip(self.member_names, self.frozen):
            if frozen:
                getattr(self, name).eval()
        return self

    def forward(self, x):
        # a plain loop over the sublayers (paddle.jit.to_static cannot trace a comprehension here)
        outputs = {}
        for name, layer in zip(self.member_names, self._members()):
            outputs[name] = layer(x)
        return outputs

    def _members(self):
        return [getattr(self, name) for name in self.member_names]
