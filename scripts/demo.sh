#!/usr/bin/env bash
# make demo: convert real BVH files into labeled Parquet and HDF5 datasets, show them, train and evaluate a small
# motion model, draw its errors and rollout, retarget a walk onto a simulated character and train a short tracking
# policy (optiq-rl), from scratch and from a pretrained motion model, list plugins.
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
# Model and predict (optiq-models): a small next-state MLP on Bandai-Namco walks and runs (a minute on 2 cores),
# evaluated on held-out takes against the zero- and constant-velocity baselines, steered by its label, drawn as
# error vs horizon and as truth beside the model's rollout.
BANDAI="$DATA/corpora/bandai_namco/data"
if [ -d "$BANDAI" ]; then
  optiq --quiet data convert --in "$BANDAI/dataset-1_walk_*" "$BANDAI/dataset-1_run_*" --out "$OUT/bandai_walk_run.parquet"
  optiq --quiet train model --config mlp --data "$OUT/bandai_walk_run.parquet" --out "$OUT/walk_run_mlp.pt" \
    --labels content --split-by label:content --max-steps 400 --input-noise 1.0 --noise-group vel
  # Steering: the held-out walks' contexts rolled out as walk and as run (the speeds are printed).
  optiq eval model --model "$OUT/walk_run_mlp.pt" --data "$OUT/bandai_walk_run.parquet" --split test --horizon 60 \
    --out "$OUT/walk_run_report.json" --pred "$OUT/walk_run_pred.parquet" \
    --steer content=walk --steer content=run --steer-from content=walk
  optiq viz plots --report "$OUT/walk_run_report.json" --out "$OUT/walk_run_errors.html"
  first=$(optiq data info "$OUT/walk_run_pred.parquet" --json | python -c "import json, sys; print(json.load(sys.stdin)['clips'][0]['name'])")
  optiq viz video --in "$OUT/bandai_walk_run.parquet" --clip "$first" --pred "$OUT/walk_run_pred.parquet" \
    --layout side-by-side --out "$OUT/walk_run_rollout.mp4"
  # Tokens: a small motion VQ-VAE (400 steps, a minute or two), the same held-out takes encoded into codebook
  # ids, decoded back to motion, scored (MPJPE, jitter, codebook use) and drawn beside the truth.
  optiq --quiet train model --config vqvae --data "$OUT/bandai_walk_run.parquet" --out "$OUT/walk_run_vq.pt" \
    --split-by label:content --max-steps 400
  optiq tokens encode --model "$OUT/walk_run_vq.pt" --data "$OUT/bandai_walk_run.parquet" --split test \
    --out "$OUT/walk_run_tokens.parquet"
  optiq tokens decode --model "$OUT/walk_run_vq.pt" --tokens "$OUT/walk_run_tokens.parquet" \
    --out "$OUT/walk_run_decoded.parquet"
  optiq eval model --model "$OUT/walk_run_vq.pt" --data "$OUT/bandai_walk_run.parquet" --split test \
    --out "$OUT/walk_run_vq_report.json" --pred "$OUT/walk_run_recon.parquet"
  optiq viz video --in "$OUT/bandai_walk_run.parquet" --clip "$first" --pred "$OUT/walk_run_recon.parquet" \
    --layout side-by-side --out "$OUT/walk_run_vq.mp4"
fi
# Simulate (optiq-rl): the DeepMimic humanoid as an MJCF, the CMU walk retargeted onto it (2 s) and drawn by MuJoCo,
# a short PPO run tracking DeepMimic's walk (about 2 minutes on 2 cores: far from a walking policy, which takes
# millions of steps), evaluated against the PD controller held on the reference, and drawn acting. 300 Hz physics
# halves the simulation cost; zero-action episodes last the same as at 600 Hz (docs/rl.md).
RL_WALK="$DATA/deepmimic/humanoid3d_walk.txt"
RL=0
if [ -f "$RL_WALK" ] && python -c "import optiq_rl" 2>/dev/null; then RL=1; fi
if [ "$RL" = 1 ]; then
  optiq rl character --deepmimic "$DATA/deepmimic/humanoid3d_character.txt" --out "$OUT/deepmimic.xml"
  optiq rl retarget --in "$DATA/bvh/cmu_12_01_walk_pybvh.bvh" --character "$OUT/deepmimic.xml" --map cmu_to_deepmimic \
    --frames 1:241 --out "$OUT/cmu_walk_on_deepmimic.parquet"
  optiq --quiet rl play --in "$OUT/cmu_walk_on_deepmimic.parquet" --character "$OUT/deepmimic.xml" \
    --out "$OUT/cmu_walk_on_deepmimic.mp4"
  optiq --quiet train rl --env optiq/Track-v0 --reference "$RL_WALK" --character "$OUT/deepmimic.xml" \
    --total-steps 20480 --out "$OUT/walk_policy.zip" --env_kwargs.physics_hz 300 --tensorboard false \
    --checkpoint_interval 0
  optiq eval rl --policy "$OUT/walk_policy.zip" --episodes 5 --baseline --out "$OUT/walk_policy_report.json"
  optiq --quiet viz video --policy "$OUT/walk_policy.zip" --episodes 2 --out "$OUT/walk_policy.mp4"
  # Bootstrapped RL (docs/rl.md, Adapters): a small next-state model of the DeepMimic walk, run and jog (the
  # character's own clips, 30 fps: its control rate), then the same tiny PPO budget from scratch (the encoder's
  # architecture, fresh weights), with the pretrained encoder as features extractor, and with the model's next pose
  # as the base of the PD targets, and with it as one more input (hint). A budget this small shows the chain, not
  # which learns faster (benchmarks/exp_bootstrap.py, docs/results.md).
  optiq --quiet train model --config mlp --data "$DATA/deepmimic/humanoid3d_walk.txt" \
    --data "$DATA/deepmimic/humanoid3d_run.txt" --data "$DATA/deepmimic/humanoid3d_jog.txt" \
    --out "$OUT/dm_motion.pt" --max_steps 300 --model.hidden 64 --model.layers 2 --test_ratio 0 --val_ratio 0
  for MODE in scratch feature prior hint; do
    optiq --quiet train rl --env optiq/Track-v0 --reference "$RL_WALK" --character deepmimic \
      --pretrained "$OUT/dm_motion.pt" --adapter-mode "$MODE" --freeze-steps 4096 --total-steps 8192 \
      --env_kwargs.control implicit_pd --tensorboard false --checkpoint_interval 0 --out "$OUT/walk_$MODE.zip"
  done
  for MODE in scratch feature prior hint; do
    optiq eval rl --policy "$OUT/walk_$MODE.zip" --episodes 5 --out "$OUT/walk_${MODE}_report.json"
  done
fi
# Video in (docs/video.md): OpenPose's 2D keypoints of the shared video as a points dataset (the subject followed
# through every frame), then drawn over the video's own frames.
KP_JSON="$DATA/keypoints2d/pose2sim_demo_cam01_openpose_body25b_json"
KP_VIDEO="$DATA/video/pose2sim_demo_singleperson_cam01.mp4"
if [ -d "$KP_JSON" ] && [ -f "$KP_VIDEO" ]; then
  optiq data convert --in "$KP_JSON" --out "$OUT/keypoints2d.parquet" --option video="$KP_VIDEO"
  optiq data info "$OUT/keypoints2d.parquet"
  optiq --quiet viz video --keypoints "$OUT/keypoints2d.parquet" --on-video "$KP_VIDEO" --out "$OUT/keypoints2d.mp4"
  # ... and lifted to 3D on the DeepMimic humanoid's skeleton (docs/video.md: one view, weak perspective), drawn.
  if python -c "import optiq_video" 2>/dev/null && [ -f "$DATA/deepmimic/humanoid3d_character.txt" ]; then
    optiq data lift --in "$OUT/keypoints2d.parquet" --skeleton "$DATA/deepmimic/humanoid3d_character.txt" \
      --out "$OUT/keypoints2d_lifted.parquet"
    optiq viz plotly --dataset "$OUT/keypoints2d_lifted.parquet" --out "$OUT/keypoints2d_lifted.html"
    optiq --quiet viz video --keypoints "$OUT/keypoints2d.parquet" --on-video "$KP_VIDEO" \
      --in "$OUT/keypoints2d_lifted.parquet" --camera follow --out "$OUT/keypoints2d_lifted.mp4"
  fi
fi
optiq plugins list
set +x
echo "demo: datasets written to $OUT"
echo "demo: HTML  $OUT/cmu_walks.html"
echo "demo: video $OUT/cmu_02_01.mp4"
echo "demo: FBX   $OUT/cmu_02_01.fbx"
if [ -d "$BANDAI" ]; then
  echo "demo: model $OUT/walk_run_mlp.pt, errors $OUT/walk_run_errors.html, rollout $OUT/walk_run_rollout.mp4"
  echo "demo: tokens $OUT/walk_run_tokens.parquet (VQ-VAE $OUT/walk_run_vq.pt), reconstruction $OUT/walk_run_vq.mp4"
fi
if [ -d "$KP_JSON" ] && [ -f "$KP_VIDEO" ]; then
  echo "demo: video keypoints $OUT/keypoints2d.parquet, drawn over the video $OUT/keypoints2d.mp4"
  echo "demo: video lifted to 3D $OUT/keypoints2d_lifted.parquet, drawn $OUT/keypoints2d_lifted.html," \
    "beside the video $OUT/keypoints2d_lifted.mp4"
fi
if [ "$RL" = 1 ]; then
  echo "demo: RL    character $OUT/deepmimic.xml, retargeted walk $OUT/cmu_walk_on_deepmimic.parquet"
  echo "demo: RL    video of it $OUT/cmu_walk_on_deepmimic.mp4, policy $OUT/walk_policy.zip"
  echo "demo: RL    report $OUT/walk_policy_report.json, video $OUT/walk_policy.mp4"
  echo "demo: RL    from a motion model $OUT/dm_motion.pt: $OUT/walk_{scratch,feature,prior,hint}.zip, reports"
  echo "demo: RL    $OUT/walk_{scratch,feature,prior,hint}_report.json"
fi
