"""optiq-fbx: read FBX animation (binary and ASCII FBX 7.x) into optiq Clips, and write binary FBX 7.4."""
