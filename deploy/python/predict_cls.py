"""Classify images with an exported model (PaddleClas's ``deploy/python/predict_cls.py`` contract).

    python deploy/python/predict_cls.py -c deploy/configs/inference_cls.yaml \\
        -o Global.inference_model_dir=output/TransXNet_T -o Global.infer_imgs=demo.jpg

The predictor is :mod:`ppvision_hybrid.predict` (also installed as ``ppvh-predict-cls``); it
imports no model code. Inside a checkout this file runs the checkout's package (as tools/*.py
do); copied elsewhere, the installed one.
"""
import zlib  # noqa: F401  -- before paddle: Paddle 2.6 crashes later zlib compression otherwise
import os
import sys

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.isfile(os.path.join(CHECKOUT, "ppvision_hybrid", "predict.py")) and CHECKOUT not in sys.path:
    sys.path.insert(0, CHECKOUT)

from ppvision_hybrid.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
