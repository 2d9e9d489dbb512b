"""Finding a dataset by name: prefix dispatch over `SourceKind`s.

    registry = sources.default_registry()
    source = registry.open("synthetic_jft/demo", data_dir)       # a TFDS family
    source = registry.open("image_folder:/data/flowers")          # a prefix

A name `<prefix>:<rest>` whose prefix is registered (as 'image_folder:')
goes to that kind; otherwise the TFDS family (the name up to '/' or ':')
picks the kind, and a family nobody registered is any TFDS dataset, which
must be prepared already.
"""

from __future__ import annotations

from input_pipeline.sources.core import DataSource
from input_pipeline.sources.kinds import (
    FromManualFolder,
    Generated,
    LocalFolder,
    Prepared,
    SourceKind,
)

_PKG = "input_pipeline.sources"


class SourceRegistry:
    """Dataset names -> the kind that finds and prepares them."""

    def __init__(self, fallback: SourceKind | None = None):
        self.fallback = fallback or Prepared()
        self._kinds: dict[str, SourceKind] = {}

    def register(self, key: str, kind: SourceKind) -> None:
        """key: a TFDS family ('voc2012_segmentation') or a prefix ending in ':'."""
        if key in self._kinds:
            raise KeyError(f"dataset source {key!r} is registered twice.")
        self._kinds[key] = kind

    def kind_of(self, name: str) -> SourceKind:
        prefix, sep, _ = name.partition(":")
        if sep and f"{prefix}:" in self._kinds:
            return self._kinds[f"{prefix}:"]
        family = name.split("/")[0].split(":")[0]
        return self._kinds.get(family, self.fallback)

    def keys(self, kind: type[SourceKind] | None = None) -> list[str]:
        """Registered families and prefixes (of one kind of policy)."""
        return sorted(k for k, v in self._kinds.items() if kind is None or isinstance(v, kind))

    def declared_splits(self, name: str) -> tuple[str, ...] | None:
        """The splits the builder of `name` can write, without data (None: unknown)."""
        return self.kind_of(name).declared_splits(name)

    def open(self, name: str, data_dir: str | None = None, *, prepare: bool = True,
             manual_dir: str | None = None, on_source_change: str = "refuse") -> DataSource:
        """The prepared dataset `name`, prepared first by its kind where allowed;
        `on_source_change`: for datasets prepared from a folder (kinds.FromManualFolder)."""
        kind = self.kind_of(name)
        builder = kind.builder(name, data_dir, prepare=prepare, manual_dir=manual_dir,
                               on_source_change=on_source_change)
        return DataSource(name, builder, kind.pp_ops())


def default_registry() -> SourceRegistry:
    """A fresh registry of every dataset the project reads."""
    reg = SourceRegistry(Prepared())
    reg.register("synthetic_jft", Generated(f"{_PKG}.synthetic_jft.builder",
                                            pp_ops_module=f"{_PKG}.synthetic_jft.pp_ops"))
    reg.register("sklearn_digits", Generated(f"{_PKG}.sklearn_digits.builder"))
    for family, module in (("voc2012_segmentation", "voc2012"),
                           ("voc2007_detection", "voc2007"),
                           ("voc0712_detection", "voc0712"),
                           ("coco_keypoints", "coco_keypoints"),
                           ("coco_detection", "coco_detection"),
                           ("open_images_labels", "open_images")):
        reg.register(family, FromManualFolder(f"{_PKG}.{module}.builder"))
    for prefix in ("image_folder:", "image_labels:"):
        reg.register(prefix, LocalFolder())
    return reg


def open_source(name: str, data_dir: str | None = None, *, prepare: bool = True,
                manual_dir: str | None = None, on_source_change: str = "refuse"
                ) -> DataSource:
    """`default_registry().open(...)`: the usual way in."""
    return default_registry().open(name, data_dir, prepare=prepare, manual_dir=manual_dir,
                                   on_source_change=on_source_change)
