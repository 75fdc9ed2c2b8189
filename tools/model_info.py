"""Print trainable parameters and multiply-accumulates (attention matmuls included) of registered
models as a markdown table, next to the reference numbers each model registers.

    python tools/model_info.py MixFormer_B0 MixFormer_B4
    python tools/model_info.py 'MixFormer*' --input-size 3 384 384
    python tools/model_info.py --all
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppvision_hybrid.cli_errors import main_guard  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="model names or shell-style patterns ('MixFormer*')")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), default=None,
                        help="input size (default: each model's registered default, 3 224 224)")
    parser.add_argument("--class-num", type=int, default=1000)
    args = parser.parse_args(argv)
    if not args.names and not args.all:
        parser.error("give model names/patterns or --all")
    return args


def resolve_names(patterns, use_all):
    import ppvision_hybrid as pvh
    if use_all:
        return pvh.list_models()
    names = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            found = pvh.list_models(pattern)
            if not found:
                raise SystemExit(f"no registered model matches '{pattern}'")
        else:
            pvh.get_model_spec(pattern)  # unknown names fail with suggestions
            found = [pattern]
        names.extend(n for n in found if n not in names)
    return names


@main_guard
def main(argv=None):
    args = parse_args(argv)
    import ppvision_hybrid as pvh
    from ppvision_hybrid.flops import format_table
    from ppvision_hybrid.registry import get_model_spec
    try:
        names = resolve_names(args.names, args.all)
    except KeyError as e:
        raise SystemExit(str(e).strip("'\""))
    rows = []
    for name in names:
        default = get_model_spec(name).default_input
        size = tuple(args.input_size) if args.input_size else default
        row = pvh.model_info(name, input_size=size, class_num=args.class_num)
        if size != tuple(default) or args.class_num != 1000:
            row["reference"] = {}  # reference numbers hold for the default input and 1000 classes
        rows.append(row)
    print(format_table(rows))


if __name__ == "__main__":
    main()
