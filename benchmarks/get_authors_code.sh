#!/usr/bin/env bash
# Fetch the authors' code that benchmarks/vs_authors.py times, at the commits this project
# measured, into DEST (default /tmp/authors). Needs git and network access once; nothing is
# written into this repository. The mmcv/timm/PaddleClas pieces those files import come from
# benchmarks/authors_shims (vs_authors.py adds it to the authors' import path itself).
#
#   bash benchmarks/get_authors_code.sh /tmp/authors
#
# Then (see the vs_authors.py docstring for the full command lines):
#   --authors-path /tmp/authors/TransXNet/models            --authors-build transxnet:transxnet_t
#   --authors-path /tmp/authors/Focal-Transformer/classification --authors-build focal_transformer:FocalTransformer
#   --authors-path /tmp/authors/mixformer --authors-framework paddle
#                  --authors-build ppcls.arch.backbone.model_zoo.mixformer:MixFormer_B4
#
# TRANSXNET_URL / FOCAL_URL (git URLs; a local mirror works) and MIXFORMER_URL (the file; a
# local path works) override the sources.
set -euo pipefail
DEST=${1:-/tmp/authors}
TRANSXNET_URL=${TRANSXNET_URL:-https://github.com/LMMMEng/TransXNet}
TRANSXNET_COMMIT=ce2c73db4ae7d216db16bcb877238e4526d9e0cf
FOCAL_URL=${FOCAL_URL:-https://github.com/microsoft/Focal-Transformer}
FOCAL_COMMIT=57bb3031582a2afb2d2a6916612bc4311316f9fc
# The official MixFormer is Paddle code from a PaddleClas pull request that never reached
# develop; its last commit (bf5f021) is still reachable by hash. One file, not the repository.
MIXFORMER_PATH=ppcls/arch/backbone/model_zoo/mixformer.py
MIXFORMER_URL=${MIXFORMER_URL:-https://raw.githubusercontent.com/PaddlePaddle/PaddleClas/bf5f021b0e9d162e77af86b5ba1604ab122c321e/$MIXFORMER_PATH}

checkout() {  # url commit dir: that commit only, without history
    local url=$1 commit=$2 dir=$3
    if [ -d "$dir/.git" ] && [ "$(git -C "$dir" rev-parse HEAD)" = "$commit" ]; then
        echo "$dir: already at $commit"; return
    fi
    rm -rf "$dir.partial" && mkdir -p "$dir.partial"
    git -C "$dir.partial" init -q
    git -C "$dir.partial" fetch -q --depth 1 "$url" "$commit"
    git -C "$dir.partial" checkout -q FETCH_HEAD
    rm -rf "$dir" && mv "$dir.partial" "$dir"  # complete or absent, never half-fetched
    echo "$dir: $url at $commit"
}

mkdir -p "$DEST"
checkout "$TRANSXNET_URL" "$TRANSXNET_COMMIT" "$DEST/TransXNet"
checkout "$FOCAL_URL" "$FOCAL_COMMIT" "$DEST/Focal-Transformer"
# The MixFormer file at its PaddleClas path but without the package __init__ files, so it imports
# the stand-ins as its siblings (a full PaddleClas checkout of that commit lacks the
# model_zoo/swin_transformer.py it imports).
target="$DEST/mixformer/$MIXFORMER_PATH"
mkdir -p "$(dirname "$target")"
if [ -f "$MIXFORMER_URL" ]; then cp "$MIXFORMER_URL" "$target.partial"
else curl -fsSL "$MIXFORMER_URL" -o "$target.partial"; fi
grep -q "def MixFormer_B4" "$target.partial" || { echo "$MIXFORMER_URL is not the MixFormer file" >&2; exit 1; }
mv "$target.partial" "$target"
echo "$target: from $MIXFORMER_URL"
