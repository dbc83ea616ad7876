"""optiq-core as its own first plugin: built-in loaders and dataset formats, registered through the same hooks
as any third-party plugin. Only hook implementations and lazy "module:attr" strings live here."""

from __future__ import annotations

from . import hookimpl


@hookimpl
def optiq_register_loaders(register):
    register("bvh", "optiq.loaders.bvh:load_bvh", suffixes=(".bvh",), write="optiq.loaders.bvh_write:write_bvh",
             sniff="optiq.loaders.bvh:sniff_bvh", description="Biovision hierarchy (any rotation order, 3/6 channels)")
    register("asf_amc", "optiq.loaders.asf_amc:load_amc", suffixes=(".amc",),
             description="Acclaim ASF skeleton + AMC motion (the .asf is found beside the .amc or passed as asf=)")
    register("deepmimic", "optiq.loaders.deepmimic:load_deepmimic", suffixes=(".txt",),
             sniff="optiq.loaders.deepmimic:sniff_deepmimic",
             description="DeepMimic motion .txt with its character file (humanoid3d by default)")
    register("amp_npy", "optiq.loaders.amp_npy:load_amp_npy", suffixes=(".npy",),
             sniff="optiq.loaders.amp_npy:sniff_amp_npy",
             description="AMP poselib SkeletonMotion .npy (restricted unpickler, no code execution)")
    register("npy_traj", "optiq.loaders.npy_traj:load_npy_traj", suffixes=(".npy",),
             sniff="optiq.loaders.npy_traj:sniff_npy_traj",
             description="[time, root_pos, root_rot, dof_pos, transition_flag] trajectories with a dof spec file")
    register("json", "optiq.loaders.json_motion:load_json", suffixes=(".json",),
             write="optiq.loaders.json_motion:write_json", sniff="optiq.loaders.json_motion:sniff_json",
             fallback=True, description="optiq JSON motion format (docs/json-motion.md)")
    # output="points": this loader returns optiq.Points (markers), not Clips; convert writes a points dataset.
    register("c3d", "optiq.loaders.c3d:load_c3d", suffixes=(".c3d",), sniff="optiq.loaders.c3d:sniff_c3d",
             output="points", description="C3D marker trajectories (Points: markers, no skeleton)")
    # folder=: a folder this predicate accepts is one recording (one JSON file per frame), read as one input.
    register("openpose", "optiq.loaders.openpose:load_openpose", folder="optiq.loaders.openpose:is_openpose_folder",
             output="points", description="OpenPose JSON folder, one file per frame (Points: 2D keypoints, one person)")
    register("coco_keypoints", "optiq.loaders.coco_keypoints:load_coco_keypoints", suffixes=(".json",),
             sniff="optiq.loaders.coco_keypoints:sniff_coco_keypoints", output="points",
             description="COCO-17 keypoint JSON, results or annotations (Points: 2D keypoints, one person)")


@hookimpl
def optiq_register_formats(register):
    register("parquet", "optiq.datasets.parquet:ParquetFormat", suffixes=(".parquet",),
             description="one row per frame, fixed-size list columns, small row groups")
    register("hdf5", "optiq.datasets.hdf5:HDF5Format", suffixes=(".h5", ".hdf5"),
             description="a group per clip, chunked datasets")
