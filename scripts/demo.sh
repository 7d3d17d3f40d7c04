#!/usr/bin/env bash
# The README quick start's main job (nox -s demo). Extra arguments go to xaicli compare.
set -euo pipefail
cd "$(dirname "$0")/.."
xaicli compare --methods gradcam,ig,lime,rise sample_data/chest/test \
    --model sample_data/models/chest/model.keras --roi sample_data/chest/masks/lesion/test \
    --out out/chest-compare --report "$@"
