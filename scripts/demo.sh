#!/usr/bin/env bash
# make demo: convert real BVH files into labeled Parquet and HDF5 datasets, show them, list plugins.
# Usage: scripts/demo.sh [--data DIR] [--out DIR]   (or OPTIQ_DATA=DIR)
set -euo pipefail
DATA="${OPTIQ_DATA:-${OPTIQ_TEST_DATA:-../shared/data}}"
OUT="out/demo"
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "demo: unknown option $1 (expected --data DIR or --out DIR)" >&2; exit 2 ;;
  esac
done
if [ ! -d "$DATA/bvh" ]; then
  echo "demo: no BVH folder at $DATA/bvh; pass --data DIR or set OPTIQ_DATA" >&2
  exit 2
fi
mkdir -p "$OUT"
# The CMU "MotionBuilder-friendly" takes share one skeleton topology (one skeleton per dataset); the other BVH
# files of the folder each have their own skeleton, so they go to a second dataset per file.
CMU=("$DATA"/bvh/cmu_01_14_bvhtodeepmimic.bvh "$DATA"/bvh/cmu_02_01_bvhtodeepmimic.bvh "$DATA"/bvh/cmu_12_01_walk_pybvh.bvh)
set -x
optiq data convert --in "${CMU[@]}" --out "$OUT/cmu.parquet" --drop-tpose --unit cmu --compute-velocities \
  --label dataset=cmu --label dialect=cgspeed
optiq data convert --in "${CMU[@]}" --out "$OUT/cmu.h5" --drop-tpose --unit cmu --compute-velocities \
  --label dataset=cmu --label dialect=cgspeed
optiq data label --in "$OUT/cmu.parquet" --out "$OUT/cmu_labeled.parquet" --label movement=walk --clips '*walk*' --clips '*02_01*'
for f in "$DATA"/bvh/*.bvh; do
  case "$f" in *cmu_01_14*|*cmu_02_01*|*cmu_12_01*) continue ;; esac
  optiq --quiet data convert --in "$f" --out "$OUT/$(basename "${f%.bvh}").h5"
done
optiq data info "$OUT/cmu_labeled.parquet"
optiq data info "$OUT/cmu.h5"
optiq data export "$OUT/cmu_labeled.parquet" --clip cmu_02_01_bvhtodeepmimic --out "$OUT/cmu_02_01.json"
# FBX (optiq-fbx): every animation stack of a file is a clip; export back to FBX.
optiq data info "$DATA/fbx/01_01_cmu.fbx"
# These exports declare centimetres but hold CMU units (a 30 m person as declared): --scale makes them 1.7 m.
optiq data convert --in "$DATA/fbx/07_01_cmu.fbx" "$DATA/fbx/08_02_cmu.fbx" --out "$OUT/cmu_fbx_walks.parquet" \
  --scale 0.0564444
optiq data export "$OUT/cmu_labeled.parquet" --clip cmu_02_01_bvhtodeepmimic --out "$OUT/cmu_02_01.fbx"
# Look at it (optiq-viz): an interactive HTML page and a frame-exact MP4 of a real clip.
optiq viz plotly --dataset "$OUT/cmu_labeled.parquet" --clip cmu_02_01_bvhtodeepmimic --clip cmu_12_01_walk_pybvh \
  --out "$OUT/cmu_walks.html"
optiq viz video --dataset "$OUT/cmu_labeled.parquet" --clip cmu_02_01_bvhtodeepmimic --out "$OUT/cmu_02_01.mp4"
optiq plugins list
set +x
echo "demo: datasets written to $OUT"
echo "demo: HTML  $OUT/cmu_walks.html"
echo "demo: video $OUT/cmu_02_01.mp4"
echo "demo: FBX   $OUT/cmu_02_01.fbx"
