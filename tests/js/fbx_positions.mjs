// Reads an FBX file with three.js's FBXLoader (in Node, no DOM) and prints, as JSON on stdout, the world position
// of every bone at every key time of its first animation, as an AnimationMixer plays it:
//   {bones: [name...], fps, times: [s...], unit_scale_factor, up_axis, frames: [[[x, y, z] per bone] per frame]}
// Positions are three.js's world coordinates: the file's units, and Y up (FBXLoader turns a Z-up file's scene by
// -90 degrees about X; it scales nothing). Bone names are the names in the file (FBXLoader's originalName).
// Usage: node fbx_positions.mjs FILE.fbx
import { readFileSync } from 'node:fs';
import * as THREE from 'three';
import { FBXLoader } from 'three/examples/jsm/loaders/FBXLoader.js';

const path = process.argv[2];
if (!path) {
	console.error('usage: node fbx_positions.mjs FILE.fbx');
	process.exit(2);
}
const buf = readFileSync(path);
const scene = new FBXLoader().parse(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), '');
if (scene.animations.length === 0) {
	console.error(`${path}: three.js found no animation`);
	process.exit(1);
}
const clip = scene.animations[0];

const bones = [];
scene.traverse((o) => { if (o.isBone) bones.push(o); });

// FBXLoader does not report the file's frame rate: the frames are the distinct key times of all tracks.
const times = [...new Set(clip.tracks.flatMap((t) => Array.from(t.times)))].sort((a, b) => a - b);
const fps = times.length > 1 ? (times.length - 1) / (times[times.length - 1] - times[0]) : 0;

// Played once and held at the end, so that the last key time samples the last frame, not the first again.
const mixer = new THREE.AnimationMixer(scene);
const action = mixer.clipAction(clip);
action.setLoop(THREE.LoopOnce);
action.clampWhenFinished = true;
action.play();

const v = new THREE.Vector3();
const frames = times.map((t) => {
	mixer.setTime(t);
	scene.updateMatrixWorld(true);
	return bones.map((b) => b.getWorldPosition(v).toArray());
});

process.stdout.write(JSON.stringify({
	bones: bones.map((b) => b.userData.originalName ?? b.name),
	fps,
	times,
	unit_scale_factor: scene.userData.unitScaleFactor ?? 1,
	up_axis: scene.rotation.x === 0 ? 'y' : 'z',
	frames,
}));
