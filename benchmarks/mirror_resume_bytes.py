"""What a resume downloads from a workdir on a mirrored scheme (s3://, hdfs://).

Copies a run's checkpoints folder, opens the copy through a file:// URL
(TensorFlow's file system layer, staged like any scheme orbax cannot write)
with the Checkpointer's mirror, and reports the bytes in the remote folder,
staged when the mirror opens it, and staged once the latest step is fetched
for its restore.

    python -m benchmarks.mirror_resume_bytes workdirs/demo/checkpoints
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile

from big_vision_like import checkpoint_mirror
from big_vision_like import filesystem as fs


def _bytes(root: str) -> int:
    return sum(fs.size(fs.join(root, rel)) for rel in fs.walk_files(root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", help="a run's checkpoints folder (left as it is)")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bvl_mirror_bytes_")
    try:
        shutil.copytree(args.checkpoints, os.path.join(scratch, "checkpoints"))
        remote = f"file://{scratch}/checkpoints"
        mirror = checkpoint_mirror.Mirror(remote)
        steps = sorted(int(n) for n in fs.listdir(mirror.local) if n.isdigit())
        result = {"steps": steps, "remote_mb": _bytes(remote) / 1e6,
                  "staged_at_open_mb": _bytes(mirror.local) / 1e6}
        mirror.fetch(str(steps[-1]))  # what Checkpointer.restore downloads
        result["staged_for_resume_mb"] = _bytes(mirror.local) / 1e6
        mirror.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
