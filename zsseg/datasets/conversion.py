"""What the PASCAL adapters (``voc``, ``context``) share: converting labels to PNGs once, in parallel,
linking the images, and mapping ZS3Net's class names onto a dataset's own.

Decoding ``.mat`` labels is slow, so the `prepare` stage converts every label a single time; images
are linked, not copied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from zsseg.datasets.folder import IMAGE_SUFFIXES, DatasetError, check_image, link_file

# Everyday names for PASCAL's glued ones.
NAME_ALIASES = {"airplane": "aeroplane", "tv": "tvmonitor", "tv monitor": "tvmonitor", "potted plant": "pottedplant",
                "dining table": "diningtable", "motorcycle": "motorbike", "couch": "sofa"}

# read(source, extra) -> (H, W) uint8 label; a module-level function, so that worker processes can run it.
LabelReader = Callable[[Path, object], np.ndarray]


def resolve_class_names(names: Sequence[str], class_names: Sequence[str], source: str) -> list[str]:
    """Map names such as "airplane" or "potted plant" onto a dataset's own class names."""
    normalised = {name.replace(" ", "").lower(): name for name in class_names}
    resolved = []
    for name in names:
        candidate = NAME_ALIASES.get(name.lower(), name)
        match = normalised.get(candidate.replace(" ", "").lower())
        if match is None:
            raise DatasetError(f"{source}: unseen class {name!r} is not one of the classes {list(class_names)}")
        resolved.append(match)
    return resolved


def mat_field(path: Path, variable: str, field: str | None) -> np.ndarray:
    """``variable`` (or its struct ``field``) of a MATLAB file, or a DatasetError naming the file."""
    from scipy.io import loadmat

    try:
        content = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises several unrelated types for broken files
        raise DatasetError(f"{path}: unreadable .mat file ({error})") from error
    if variable not in content:
        raise DatasetError(f"{path}: no variable {variable!r} in the .mat file")
    value = content[variable]
    if field is not None:
        if not hasattr(value, field):
            raise DatasetError(f"{path}: {variable} has no field {field!r}")
        value = getattr(value, field)
    return np.asarray(value)


def find_image(directories: Sequence[Path], image_id: str) -> Path:
    for directory in directories:
        for suffix in IMAGE_SUFFIXES:
            candidate = directory / f"{image_id}{suffix}"
            if candidate.is_file():
                return candidate
    raise DatasetError(f"{directories[0] / image_id}.jpg: image of id {image_id!r} not found "
                       f"(looked in {', '.join(str(d) for d in directories)})")


def _convert_one(job: tuple[LabelReader, str, str, object]) -> tuple[str, int, int]:
    read, source, destination, extra = job
    label = read(Path(source), extra)
    Image.fromarray(label, mode="L").save(destination)
    return destination, label.shape[0], label.shape[1]


def write_prepared(output: Path, class_names: Sequence[str], unseen_order: Sequence[str],
                   splits: dict[str, list[str]], images: dict[str, Path],
                   label_jobs: dict[str, tuple[LabelReader, Path, object]], workers: int,
                   log: Callable[[str], None]) -> None:
    """Write the folder-format view: class lists, split files, image links, and every label converted by
    its reader in ``workers`` processes and checked against its image's size."""
    (output / "images").mkdir(parents=True)
    (output / "labels").mkdir()
    (output / "classes.txt").write_text("\n".join(class_names) + "\n")
    (output / "unseen.txt").write_text("\n".join(unseen_order) + "\n")
    for split, ids in splits.items():
        if not ids:
            raise DatasetError(f"the {split} split is empty after removing duplicates and val images")
        (output / f"{split}.txt").write_text("\n".join(ids) + "\n")
    for image_id, source in images.items():
        link_file(source, output / "images" / f"{image_id}{source.suffix.lower()}")
    jobs = [(read, str(source), str(output / "labels" / f"{image_id}.png"), extra)
            for image_id, (read, source, extra) in label_jobs.items()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for destination, height, width in tqdm(pool.map(_convert_one, jobs, chunksize=16), total=len(jobs),
                                               desc="convert labels", unit="label"):
            image_id = Path(destination).stem
            size, _ = check_image(images[image_id])
            if size != (width, height):
                raise DatasetError(f"{label_jobs[image_id][1]}: label size {width}x{height} does not match its "
                                   f"image {images[image_id]} ({size[0]}x{size[1]})")
    log(f"prepared {', '.join(f'{len(ids)} {split}' for split, ids in splits.items())} images")
