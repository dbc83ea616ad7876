"""Hook implementations only: the FBX loader and writer as lazy "module:attr" targets."""

from __future__ import annotations

import optiq


@optiq.hookimpl
def optiq_register_loaders(register):
    register("fbx", "optiq_fbx.loader:load_fbx", suffixes=(".fbx",), write="optiq_fbx.writer:write_fbx",
             sniff="optiq_fbx.loader:sniff_fbx",
             description="FBX 7.x binary and ASCII: skeleton and every AnimationStack as a clip; writes binary FBX 7.4")
