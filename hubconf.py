"""paddle.hub entry points: one per registered model.

    import paddle
    model = paddle.hub.load('path/to/ppvision-hybrid', 'MixFormer_B4', source='local',
                            pretrained=False, class_num=10)
    paddle.hub.list('path/to/ppvision-hybrid', source='local')
    print(paddle.hub.help('path/to/ppvision-hybrid', 'TransXNet_T', source='local'))

Only the registry is imported; everything not an entry point is underscore-prefixed so that
``paddle.hub.list`` returns exactly the model names.
"""
import ppvision_hybrid as _pvh
from ppvision_hybrid.hub import make_entry as _make_entry

dependencies = ["paddle", "numpy", "yaml"]

for _name in _pvh.list_models():
    globals()[_name] = _make_entry(_name)
