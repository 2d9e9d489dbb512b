"""Fields every training config sets the same way."""

import ml_collections


def set_mesh_and_sharding(c: ml_collections.ConfigDict, sharding: str = "head") -> None:
    """mesh: all devices on `data` unless overridden (--config.mesh.model=8).

    sharding: "head" puts the head's class dimension over `model`; "fsdp"
    also splits the backbone and its optimizer state over `data`;
    "replicated" splits nothing. (regex, spec) pairs in sharding_rules take
    precedence over the preset's.
    """
    c.mesh = dict(data=-1, model=1)
    c.sharding = sharding
    c.sharding_rules = ()
