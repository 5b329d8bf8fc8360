"""A tiny MobileNetV3-style segmentation network, trained from scratch.

Input: the normalised image plus, optionally, a channel with each pixel's row position.
Encoder: a stride-2 stem and inverted-residual blocks (1x1 expand, 3x3 depthwise, optional
squeeze-and-excite, 1x1 project) down to 1/16 of the input, with a global-context branch.
Decoder: U-Net-like, upsampling and fusing the 1/8, 1/4 and 1/2 features, then a
full-resolution detail branch so that the bottom edge of an obstacle (its ground contact,
which the BEV projection depends on) is placed to the pixel. About 0.1 M parameters and
~60 M multiply-adds for a 160 x 120 input.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sidewalk_robot.perception.labels import CLASS_NAMES
# InputSpec lives with the model card (no torch there, for the robot); imported from here too.
from sidewalk_robot.perception.model_card import InputSpec  # noqa: F401


@dataclass(frozen=True)
class StageSpec:
    expand_ratio: int
    out_channels: int
    stride: int
    repeats: int
    squeeze_excite: bool
    dilation: int = 1
    """Dilation of the depthwise 3x3 in the stage's blocks after its first (the strided one):
    a wider view (where is the ground, what surrounds a patch) at the same cost."""


DEFAULT_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 16, 1, 1, False),
    StageSpec(3, 24, 2, 2, False),
    StageSpec(3, 40, 2, 3, True),
    StageSpec(4, 64, 2, 2, True),
)


@dataclass(frozen=True)
class ArchitectureSpec:
    stem_channels: int = 16
    stages: tuple[StageSpec, ...] = DEFAULT_STAGES
    detail_channels: int = 8
    head_channels: int = 16
    num_classes: int = len(CLASS_NAMES)
    row_position_input: bool = True
    """A fourth input channel with each pixel's row (-1 top .. 1 bottom): where in the image a
    surface lies is strong evidence of ground (near, bottom) versus obstacle, which a network
    with zero padding and a limited receptive field otherwise sees only vaguely."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ArchitectureSpec:
        stages = tuple(StageSpec(**stage) for stage in values['stages'])
        # Models saved before the row-position channel existed were trained without it.
        return cls(**{'row_position_input': False, **values, 'stages': stages})


class ConvBnAct(nn.Module):
    """Conv -> BatchNorm -> activation; ``fuse()`` folds the BatchNorm into the conv for inference."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, activation: type[nn.Module] | None = nn.Hardswish,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, dilation * (kernel // 2),
                              dilation=dilation, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels)
        self.act = activation() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(self.conv.in_channels, self.conv.out_channels, self.conv.kernel_size,
                          self.conv.stride, self.conv.padding, dilation=self.conv.dilation,
                          groups=self.conv.groups, bias=True)
        fused.weight.copy_(self.conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv = fused
        self.bn = nn.Identity()


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(8, channels // 4)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.adaptive_avg_pool2d(x, 1)
        weights = F.hardsigmoid(self.expand(F.relu(self.reduce(weights))))
        return x * weights


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, stride: int,
                 squeeze_excite: bool, dilation: int = 1) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBnAct(in_channels, hidden, 1))
        layers.append(ConvBnAct(hidden, hidden, 3, stride, groups=hidden, dilation=dilation))
        if squeeze_excite:
            layers.append(SqueezeExcite(hidden))
        layers.append(ConvBnAct(hidden, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class SeparableConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvBnAct(in_channels, in_channels, 3, groups=in_channels),
                         ConvBnAct(in_channels, out_channels, 1))


class FuseUp(nn.Module):
    """Upsample the deeper features to the skip's size, concatenate, mix."""

    def __init__(self, deep_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.mix = ConvBnAct(deep_channels + skip_channels, out_channels, 1)
        self.refine = SeparableConv(out_channels, out_channels)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        deep = F.interpolate(deep, size=skip.shape[-2:], mode='bilinear', align_corners=False)
        return self.refine(self.mix(torch.cat([deep, skip], dim=1)))


class SegmentationNet(nn.Module):
    """Image (B, 3, H, W), normalised -> class logits (B, C, H, W)."""

    def __init__(self, spec: ArchitectureSpec = ArchitectureSpec()) -> None:
        super().__init__()
        self.spec = spec
        self.stem = ConvBnAct(3 + int(spec.row_position_input), spec.stem_channels, 3, stride=2)
        self.stages = nn.ModuleList()
        channels = spec.stem_channels
        stage_channels: list[int] = []
        for stage in spec.stages:
            blocks = []
            for repeat in range(stage.repeats):
                blocks.append(InvertedResidual(channels, stage.out_channels, stage.expand_ratio,
                                               stage.stride if repeat == 0 else 1,
                                               stage.squeeze_excite,
                                               1 if repeat == 0 else stage.dilation))
                channels = stage.out_channels
            self.stages.append(nn.Sequential(*blocks))
            stage_channels.append(channels)
        self.context = ConvBnAct(channels, channels, 1)
        self.decoders = nn.ModuleList()
        deep = channels
        for skip in reversed(stage_channels[:-1]):
            self.decoders.append(FuseUp(deep, skip, skip))
            deep = skip
        self.detail = ConvBnAct(3, spec.detail_channels, 3) if spec.detail_channels else None
        final_in = deep + spec.detail_channels
        self.final = SeparableConv(final_in, spec.head_channels)
        self.head = nn.Conv2d(spec.head_channels, spec.num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = []
        x = self.stem(with_row_position(image) if self.spec.row_position_input else image)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        x = x + self.context(F.adaptive_avg_pool2d(x, 1))
        for decoder, skip in zip(self.decoders, reversed(features[:-1])):
            x = decoder(x, skip)
        x = F.interpolate(x, size=image.shape[-2:], mode='bilinear', align_corners=False)
        if self.detail is not None:
            x = torch.cat([x, self.detail(image)], dim=1)
        return self.head(self.final(x))

    def fuse_for_inference(self) -> SegmentationNet:
        """Fold every BatchNorm into its conv (eval mode only); returns self."""
        if self.training:
            raise RuntimeError('fuse_for_inference needs eval mode')
        for module in self.modules():
            if isinstance(module, ConvBnAct):
                module.fuse()
        return self


def with_row_position(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 1, H, W): the last channel is the pixel row, -1 top .. 1 bottom."""
    batch, _, height, width = image.shape
    rows = torch.linspace(-1.0, 1.0, height, dtype=image.dtype, device=image.device)
    position = rows.view(1, 1, height, 1).expand(batch, 1, height, width)
    return torch.cat([image, position], dim=1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
