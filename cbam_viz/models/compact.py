"""A compact residual CBAM network for small images, fast enough to train a whole family on 2 CPU cores.

The layout follows the fast CIFAR-10 networks (Page's ResNet-9 and its descendant airbench94,
K. Jordan 2024), with a CBAM module on every residual branch as in :mod:`cbam_viz.resnet`:

* ``stem``: a 2x2 convolution with 24 filters (no padding), initialised by :func:`init_whitening`
  to whiten the training images' 2x2 patches, then GELU;
* ``layer1.0`` .. ``layer3.0``: one residual block per stage,
  ``h = gelu(bn1(maxpool2(conv1(x))))`` and ``out = gelu(cbam(bn2(conv2(h))) + h)``;
* head: global max pooling and a linear classifier without bias, its output scaled by 1/9.

BatchNorm layers have no learned scale while the network trains from scratch (the weight stays 1;
attention fine-tunes may train it). At 32x32 inputs the blocks see 15x15, 7x7 and 3x3 maps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import CBAM, CBAMConfig

WIDTHS = (64, 256, 256)
STEM_WIDTH = 24  # 12 whitening filters (3 channels x 2 x 2) and their negatives
LOGIT_SCALE = 1 / 9


def _bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=0.4)
    bn.weight.requires_grad_(False)
    return bn


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight.data[: min(cin, cout)])  # starts as (part of) the identity
    return conv


class CompactBlock(nn.Module):
    """Convolution, max-pool, BN, GELU; then a residual branch conv, BN, CBAM, added back."""

    def __init__(self, cin: int, cout: int, cbam: CBAMConfig | None) -> None:
        super().__init__()
        self.conv1, self.pool, self.bn1 = _conv(cin, cout), nn.MaxPool2d(2), _bn(cout)
        self.conv2, self.bn2 = _conv(cout, cout), _bn(cout)
        self.act = nn.GELU()
        self.cbam = nn.Identity() if cbam is None or cbam.attention == "none" else CBAM(cout, cbam)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.cbam(self.bn2(self.conv2(h))) + h)


class CompactCBAMNet(nn.Module):
    """The compact network; ``cbam=None`` gives the same network without attention."""

    def __init__(self, cbam: CBAMConfig | None = CBAMConfig(), num_classes: int = 10,
                 widths: tuple[int, int, int] = WIDTHS) -> None:
        super().__init__()
        if num_classes < 1 or len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"need num_classes >= 1 and three positive widths, got {num_classes}, {widths}")
        self.cbam_config, self.widths = cbam, tuple(widths)
        self.stem = nn.Conv2d(3, STEM_WIDTH, 2)
        self.stem_act = nn.GELU()
        cin = STEM_WIDTH
        for i, cout in enumerate(widths, 1):
            setattr(self, f"layer{i}", nn.Sequential(CompactBlock(cin, cout, cbam)))
            cin = cout
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(cin, num_classes, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem_act(self.stem(x)))))
        return self.fc(self.pool(x).flatten(1)) * LOGIT_SCALE


@torch.no_grad()
def init_whitening(conv: nn.Conv2d, images: Tensor, eps: float = 5e-4) -> None:
    """Set a 2x2 convolution to whiten the 2x2 patches of ``images`` (N, 3, H, W, normalised).

    The filters are the eigenvectors of the patches' covariance divided by the square root of
    their eigenvalue, largest first, followed by their negatives; the bias starts at zero.
    """
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0).reshape(12, 3, 2, 2)
    filters = (eigenvectors / torch.sqrt(eigenvalues.clamp(min=0) + eps).view(-1, 1, 1, 1)).to(conv.weight.dtype)
    conv.weight.copy_(torch.cat([filters, -filters]))
    conv.bias.zero_()
