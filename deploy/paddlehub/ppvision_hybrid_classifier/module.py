"""PaddleHub module wrapping any ppvision-hybrid classifier (optional; needs paddlehub).

    import paddlehub as hub
    m = hub.Module(directory="deploy/paddlehub/ppvision_hybrid_classifier",
                   model_name="MixFormer_B0", pretrained=False, class_num=1000)
    m.predict(images=[np.ndarray HWC BGR, ...], topk=5)   # -> [[(class_id, score), ...], ...]
"""
import os
import sys

import numpy as np
import paddle
from paddlehub.module.module import moduleinfo

try:
    import ppvision_hybrid
except ImportError:  # used from a source checkout: the repo root is three folders up
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
    import ppvision_hybrid

_MEAN = np.array([0.485, 0.456, 0.406], dtype="float32")
_STD = np.array([0.229, 0.224, 0.225], dtype="float32")


@moduleinfo(name="ppvision_hybrid_classifier", version="0.1.0", type="CV/image_classification",
            author="ppvision-hybrid", summary="MixFormer, MAFormer, DualFormer, TransXNet and Focal "
            "Transformer classifiers from ppvision-hybrid")
class PPVisionHybridClassifier(paddle.nn.Layer):
    def __init__(self, model_name="MixFormer_B0", pretrained=False, class_num=1000, input_size=224,
                 **kwargs):
        # moduleinfo re-creates the class, so zero-argument super() cannot be used here.
        paddle.nn.Layer.__init__(self)
        self.model_name = model_name
        self.input_size = int(input_size)
        self.model = ppvision_hybrid.create_model(model_name, pretrained=pretrained,
                                                  class_num=class_num, **kwargs)
        self.model.eval()

    def forward(self, x):
        return self.model(x)

    def _preprocess(self, image):
        import cv2
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {image.shape}")
        short = int(round(self.input_size / 0.875))
        h, w = image.shape[:2]
        scale = short / min(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_CUBIC)
        h, w = image.shape[:2]
        top, left = (h - self.input_size) // 2, (w - self.input_size) // 2
        image = image[top:top + self.input_size, left:left + self.input_size, ::-1]
        image = (image.astype("float32") / 255.0 - _MEAN) / _STD
        return image.transpose(2, 0, 1)

    def predict(self, images, topk=5):
        """Top-k (class_id, probability) per image (images: list of HxWx3 BGR uint8 arrays)."""
        batch = paddle.to_tensor(np.stack([self._preprocess(np.asarray(im)) for im in images]))
        with paddle.no_grad():
            probs = paddle.nn.functional.softmax(self.model(batch), axis=-1).numpy()
        order = np.argsort(-probs, axis=1)[:, :topk]
        return [[(int(c), float(p[c])) for c in row] for row, p in zip(order, probs)]
