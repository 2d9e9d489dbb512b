"""Datasets, found, prepared and opened through one interface.

`registry.open_source(name, data_dir)` (or a `SourceRegistry` of your own) gives a
`core.DataSource`. One folder per dataset the project can build or read:
synthetic_jft and sklearn_digits (generated offline), voc2007, voc2012,
coco_detection, coco_keypoints and open_images (written from a folder the user
extracted them into), local_formats (a user's own image folders).
"""
