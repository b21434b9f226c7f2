"""The frozen ImageNet encoder's maps of every image, computed once and shared (the encode stage).

With ``backbone.share_encoder_maps``, the encoder is the same for every K and seed (frozen, from the same
ImageNet weights), so its maps are too: the backbone stage trains the head on them and the features stage
runs the head on them, instead of both running the encoder in every cell of the grid. The maps are float32
and per image exactly what the encoder computes; a split's images must share one size.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from zsseg.config import BackboneParams, ParamsError
from zsseg.datasets.folder import SPLITS, DatasetError, FolderDataset
from zsseg.network import SegmentationNetwork, weights_of

@torch.no_grad()
def write_encoder_maps(backbone: BackboneParams, dataset: FolderDataset, path: str | Path, batch_size: int,
                       device: torch.device) -> None:
    """Every split's encoder maps into ``path``; with sharing off, a file that says so and holds none."""
    with h5py.File(path, "w") as handle:
        handle.attrs["shared"] = backbone.share_encoder_maps
        handle.attrs["arch"], handle.attrs["weights"] = backbone.arch, backbone.weights
        if not backbone.share_encoder_maps:
            return
        encoder = SegmentationNetwork(backbone.arch, 1, backbone.feature_dim, backbone.aspp_rates,
                                      weights_of(backbone)).encoder.to(device).eval()
        for split in (split for split in SPLITS if dataset.has_split(split)):
            ids = dataset.ids(split)
            group = handle.create_group(split)
            group.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
            size = None
            for start in tqdm(range(0, len(ids), batch_size), desc=f"encode {split}", unit="batch"):
                images = []
                for image_id in ids[start:start + batch_size]:
                    image = dataset.load_image(image_id)
                    if size is not None and image.shape != size:
                        raise DatasetError(f"{dataset.image_path(image_id)}: size {image.shape[1]}x{image.shape[0]} "
                                           f"differs from the other {split} images; shared encoder maps need one "
                                           f"size per split: set backbone.share_encoder_maps: false")
                    size = image.shape
                    images.append(torch.from_numpy(image).permute(2, 0, 1))
                low, high = encoder(torch.stack(images).to(device).float())
                for name, maps in (("low", low), ("high", high)):
                    if name not in group:
                        group.create_dataset(name, shape=(len(ids), *maps.shape[1:]), dtype="float32")
                    group[name][start:start + len(images)] = maps.float().cpu().contiguous().numpy()


class EncoderMaps:
    """The maps of ``path`` for reading by image id, refused unless written for ``backbone``'s encoder."""

    def __init__(self, path: str | Path, backbone: BackboneParams) -> None:
        self.path = Path(path)
        with h5py.File(self.path, "r") as handle:
            shared = bool(handle.attrs["shared"])
            written = {key: str(handle.attrs[key]) for key in ("arch", "weights")}
            self.rows = {split: {image_id: row for row, image_id in enumerate(handle[split]["ids"].asstr()[:])}
                         for split in handle.keys()}
        expected = {"arch": backbone.arch, "weights": backbone.weights}
        if shared != backbone.share_encoder_maps or (shared and written != expected):
            raise ParamsError(f"{self.path}: written for share_encoder_maps = {shared} and {written}, but "
                              f"params.yaml has {backbone.share_encoder_maps} and {expected}: rerun the encode stage")

    def read(self, split: str, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) maps of ``ids`` of ``split``, in that order, as channels_last float32 tensors."""
        missing = [image_id for image_id in ids if image_id not in self.rows.get(split, {})]
        if missing:
            raise DatasetError(f"{self.path}: no {split} maps of image {missing[0]!r}: rerun the encode stage")
        rows = np.array([self.rows[split][image_id] for image_id in ids])
        order = np.argsort(rows)
        with h5py.File(self.path, "r") as handle:
            maps = []
            for name in ("low", "high"):
                # h5py reads increasing rows; put them back in the order asked for.
                values = np.empty((len(ids), *handle[split][name].shape[1:]), dtype=np.float32)
                values[order] = handle[split][name][rows[order]]
                maps.append(torch.from_numpy(values).contiguous(memory_format=torch.channels_last))
        return maps[0], maps[1]


def shared_maps(path: str | Path, backbone: BackboneParams) -> EncoderMaps | None:
    """The encode stage's maps when ``backbone.share_encoder_maps``, else None (the stage runs the encoder)."""
    return EncoderMaps(path, backbone) if backbone.share_encoder_maps else None
