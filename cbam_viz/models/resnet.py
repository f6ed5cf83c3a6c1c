"""CBAM-ResNet: torchvision's ResNet wiring with a CBAM module on every residual branch.

As in the official code, CBAM refines the residual branch after the block's last BatchNorm and
before the addition: ``out = relu(cbam(bn_last(...)) + shortcut(x))``. Parameter names follow
torchvision (``layer3.1.conv2.weight``), the CBAM module of a block is ``layer3.1.cbam``.

As in torchvision's and timm's blocks, the shortcut is added in place to the CBAM's output, so a
forward hook that keeps that output for later must clone it (the gates' own outputs, Mc and Ms,
which :class:`~cbam_viz.explain.recorder.AttentionRecorder` keeps, are never written to).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from .attention import CBAM, CBAMConfig

Stem = Literal["imagenet", "cifar"]

DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


def _cbam(channels: int, config: CBAMConfig | None) -> nn.Module:
    """The block's CBAM, or an identity when the network has no attention."""
    return nn.Identity() if config is None or config.attention == "none" else CBAM(channels, config)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; CBAM after ``bn2``."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, cbam: CBAMConfig | None = None) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)
        self.cbam = _cbam(cout, cbam)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        out = self.cbam(out)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 - 3x3 (strided, as in torchvision v1.5 and the official code) - 1x1; CBAM after ``bn3``."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, cbam: CBAMConfig | None = None) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)
        self.cbam = _cbam(cout, cbam)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        out = self.cbam(out)
        out += identity
        return self.relu(out)


class CBAMResNet(nn.Module):
    """A ResNet whose residual blocks carry CBAM (or none, when ``cbam`` is None)."""

    def __init__(
        self,
        depth: int = 50,
        cbam: CBAMConfig | None = CBAMConfig(),
        num_classes: int = 1000,
        stem: Stem = "imagenet",
        width: float = 1.0,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {depth!r}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
        kind, layers = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth, self.stem, self.width, self.cbam_config = depth, stem, width, cbam
        widths = [max(1, round(w * width)) for w in (64, 128, 256, 512)]

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = _conv3x3(3, widths[0])
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)

        cin = widths[0]
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stage = []
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                stage.append(block(cin, planes, stride, cbam))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.bn2.weight if isinstance(m, BasicBlock) else m.bn3.weight)

    def features(self, x: Tensor) -> Tensor:
        """Everything before global pooling: (B, C, H', W')."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.features(x)).flatten(1))


def cbam_resnet(depth: int, cbam: CBAMConfig | None = CBAMConfig(), **kwargs) -> CBAMResNet:
    """Build a CBAM-ResNet of ``depth`` 18, 34, 50 or 101 (``cbam=None`` for a plain ResNet)."""
    return CBAMResNet(depth, cbam, **kwargs)


def cbam_resnet18(cbam: CBAMConfig | None = CBAMConfig(), **kwargs) -> CBAMResNet:
    """CBAM-ResNet-18 (BasicBlock, 2-2-2-2)."""
    return CBAMResNet(18, cbam, **kwargs)


def cbam_resnet34(cbam: CBAMConfig | None = CBAMConfig(), **kwargs) -> CBAMResNet:
    """CBAM-ResNet-34 (BasicBlock, 3-4-6-3)."""
    return CBAMResNet(34, cbam, **kwargs)


def cbam_resnet50(cbam: CBAMConfig | None = CBAMConfig(), **kwargs) -> CBAMResNet:
    """CBAM-ResNet-50 (Bottleneck, 3-4-6-3)."""
    return CBAMResNet(50, cbam, **kwargs)


def cbam_resnet101(cbam: CBAMConfig | None = CBAMConfig(), **kwargs) -> CBAMResNet:
    """CBAM-ResNet-101 (Bottleneck, 3-4-23-3)."""
    return CBAMResNet(101, cbam, **kwargs)
