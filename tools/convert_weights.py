"""Convert an authors' checkpoint into a verified ppvision_hybrid ``.pdparams`` file.

    python tools/convert_weights.py --model TransXNet_T --src transx-t.pth.tar --dst TransXNet_T.pdparams
    python tools/convert_weights.py --model MixFormer_B4 --src MixFormer_B4.pdparams --dst MixFormer_B4.pdparams

What is accepted, how it is checked and how ``--dst`` is written (atomically: ``--src X --dst X``
is safe) is :mod:`ppvision_hybrid.convert`; this tool is its command line. A JSON record
(``<dst>.json``: model, sha256 of input and output, key counts, class count) is printed and
written next to ``dst``.

Exit status 0 on success, 1 with a one-paragraph message otherwise.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ppvision_hybrid.convert import (ConversionError, convert, read_checkpoint,  # noqa: E402,F401
                                     unwrap_state_dict)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registered model name, e.g. TransXNet_T")
    parser.add_argument("--src", required=True, help="authors' checkpoint (.pth/.pth.tar/.pdparams)")
    parser.add_argument("--dst", required=True, help="output .pdparams")
    parser.add_argument("--key", default=None, help="checkpoint entry holding the weights (default: auto)")
    args = parser.parse_args(argv)
    if not args.dst.endswith(".pdparams"):
        parser.error("--dst must end with .pdparams")
    try:
        convert(args.model, args.src, args.dst, key=args.key)
    except ConversionError as e:
        print(f"convert_weights: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
