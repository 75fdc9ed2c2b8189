"""PaddleX on one of our classification exports (``inference.json`` + ``inference.yml``):

    <python with paddlex> benchmarks/paddlex_check.py MODEL_DIR IMAGE [--paddlex-name PP-LCNet_x1_0]

Tries, and reports each outcome on one line (then a JSON line):

1. ``paddlex.create_model(model_name=<inference.yml's Global.model_name>, model_dir=MODEL_DIR)``;
2. the same export presented under a classification model name PaddleX knows
   (``--paddlex-name``, written into a copy's inference.yml), with PaddleX's default engine
   configuration;
3. as 2 with ``engine_config={"run_mode": "paddle"}`` (oneDNN off);
4. as 2 with ``engine_config={"run_mode": "mkldnn", "delete_pass": ONEDNN_BROKEN_PASSES}``
   (the passes ppvision_hybrid.inference deletes);

and compares the top classes and scores with deploy/python/predict_cls.py's on the same image.
Exit status 0 (a report, not a gate).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)


def _attempt(label, image, **kwargs):
    from paddlex import create_model
    try:
        model = create_model(**kwargs)
        import numpy as np
        res = next(iter(model.predict(image, batch_size=1)))
        out = {"class_ids": [int(i) for i in np.ravel(res["class_ids"])],
               "scores": [round(float(s), 4) for s in np.ravel(res["scores"])],
               "label_names": [str(n) for n in np.ravel(res.get("label_names") or [])]}
        return {"attempt": label, "ok": True, **out}
    except Exception as e:  # PaddleX raises many kinds; each is the finding
        return {"attempt": label, "ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}


def _ours(model_dir, image):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "deploy", "python", "predict_cls.py"), "--model_dir",
                           model_dir, "--infer_imgs", image, "--cpu_threads", "1"], capture_output=True, text=True)
    line = next((line for line in proc.stdout.splitlines() if "class id(s)" in line), "")
    return line.split(":\t", 1)[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("image")
    parser.add_argument("--paddlex-name", default="PP-LCNet_x1_0")
    args = parser.parse_args(argv)
    from ppvision_hybrid.inference import ONEDNN_BROKEN_PASSES
    import paddlex
    with open(os.path.join(args.model_dir, "inference.yml")) as f:
        own_name = (yaml.safe_load(f).get("Global") or {}).get("model_name")
    results = [_attempt(f"model_name={own_name} (ours)", args.image, model_name=own_name, model_dir=args.model_dir)]
    alias = tempfile.mkdtemp(prefix="ppvh_paddlex_")
    try:
        copy = os.path.join(alias, "model")
        shutil.copytree(args.model_dir, copy)
        with open(os.path.join(copy, "inference.yml")) as f:
            cfg = yaml.safe_load(f)
        cfg.setdefault("Global", {})["model_name"] = args.paddlex_name
        with open(os.path.join(copy, "inference.yml"), "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        common = dict(model_name=args.paddlex_name, model_dir=copy, device="cpu")
        results.append(_attempt(f"model_name={args.paddlex_name}, PaddleX defaults", args.image, **common))
        results.append(_attempt(f"model_name={args.paddlex_name}, run_mode paddle", args.image,
                                engine_config={"run_mode": "paddle"}, **common))
        results.append(_attempt(f"model_name={args.paddlex_name}, run_mode mkldnn + delete_pass", args.image,
                                engine_config={"run_mode": "mkldnn", "delete_pass": list(ONEDNN_BROKEN_PASSES)},
                                **common))
    finally:
        shutil.rmtree(alias, ignore_errors=True)
    ours = _ours(args.model_dir, args.image)
    for r in results:
        print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['attempt']}: "
              + (f"class ids {r['class_ids']}, scores {r['scores']}, names {r['label_names']}" if r["ok"] else r["error"]))
    print(f"ours (deploy/python/predict_cls.py): {ours}")
    print(json.dumps({"benchmark": "paddlex_check", "paddlex": paddlex.__version__, "results": results,
                      "predict_cls": ours}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
