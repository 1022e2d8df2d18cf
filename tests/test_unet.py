"""The spectra denoiser: shapes, conditioning, continuity in eta/s, periodic phi padding."""

import pytest
import torch

from hicgen.models.unet import PRESETS, UNet, UNetConfig, count_parameters, preset, untrained_label_features


def _net(resolution: int = 16, **overrides) -> UNet:
    torch.manual_seed(0)
    net = UNet(preset("tiny", resolution=resolution, **overrides))
    # Residual branches and the output convolution start at zero (identity-friendly init); give them
    # weights, as training would, so the tests see how every input reaches the output.
    for name, param in net.named_parameters():
        if param.ndim == 4 and not param.any():
            torch.nn.init.normal_(param, std=0.1)
    return net.eval()


def _inputs(b: int = 2, r: int = 16):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 1, r, r, generator=g), torch.rand(b, generator=g), torch.rand(b, 1, r, r, generator=g), torch.rand(b, generator=g)


@pytest.mark.parametrize("resolution", [16, 64])
def test_output_shape(resolution):
    z, t, ic, label = _inputs(2, resolution)
    out = _net(resolution)(z, t, ic, label)
    assert out.shape == (2, 1, resolution, resolution)
    assert torch.isfinite(out).all()


def test_presets_build_and_grow():
    sizes = [count_parameters(UNet(preset(name))) for name in ("tiny", "small", "base")]
    assert sizes == sorted(sizes) and set(PRESETS) == {"tiny", "small", "base"}


def test_attention_only_at_low_resolution():
    net = UNet(preset("tiny"))  # 64 -> 32 -> 16 -> 8
    attn = [m for m in net.modules() if m.__class__.__name__ == "Attention"]
    # one per res block at 16 and 8 on the way down (1 block each) and up (2 each), plus the bottleneck
    assert len(attn) == 2 * 1 + 2 * 2 + 1


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(resolution=30)


@torch.no_grad()
def test_conditioning_changes_output():
    net = _net()
    z, t, ic, label = _inputs()
    base = net(z, t, ic, label)
    assert not torch.allclose(base, net(z, t, ic * 2.0, label), atol=1e-5)
    assert not torch.allclose(base, net(z, t, ic, label + 0.5), atol=1e-5)
    assert not torch.allclose(base, net(z, t * 0.5, ic, label), atol=1e-5)
    # each sample only sees its own conditioning
    other = net(z, t, torch.cat([ic[:1], ic[1:] * 3.0]), label)
    torch.testing.assert_close(other[0], base[0])


@torch.no_grad()
def test_eta_s_interpolation_is_continuous():
    net = _net()
    z, t, ic, _ = _inputs(1)
    labels = torch.linspace(0.0, 1.0, 101)
    outs = torch.stack([net(z, t, ic, u.reshape(1)) for u in labels])
    steps = (outs[1:] - outs[:-1]).abs().amax(dim=(1, 2, 3, 4))
    spread = (outs[-1] - outs[0]).abs().max()
    assert spread > 0
    # Lipschitz-like: no jump between neighbouring values is more than a few times the average step
    assert steps.max() < 5 * steps.mean()
    assert steps.max() < 0.2 * spread


def test_untrained_label_features_are_those_vanishing_at_every_trained_label():
    """Features [u, sin 2pi f u, cos 2pi f u] at f = 0.25, 0.5, 1: at u = 0, 0.5, 1 (eta/s 0, 0.1, 0.2) only
    sin 2pi u is zero on every record; a fourth trained value, or none, leaves every feature in."""
    frequencies = torch.tensor(UNetConfig().label_frequencies)
    mask = untrained_label_features(torch.tensor([0.0, 0.5, 1.0]), frequencies)
    assert mask.tolist() == [False, False, False, True, False, False, False]
    assert not untrained_label_features(torch.tensor([0.0, 0.25, 0.5, 1.0]), frequencies).any()
    assert not untrained_label_features(torch.tensor([]), frequencies).any()


@torch.no_grad()
def test_dropping_untrained_label_weights_keeps_the_trained_labels_and_removes_the_initialisation():
    """Two networks that differ only in their (random) weights on sin 2pi u answer alike at the trained labels and,
    once those weights are dropped, also between them."""
    a, b = _net(), _net()
    b.label_mlp[0].weight[:, 3].normal_(generator=torch.Generator().manual_seed(5))
    z, t, ic, _ = _inputs(1)
    trained, between = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.25])
    before = [a(z, t, ic, u.reshape(1)) for u in trained]
    assert not torch.allclose(a(z, t, ic, between), b(z, t, ic, between), atol=1e-5)
    assert a.drop_untrained_label_weights(trained) == 1 and b.drop_untrained_label_weights(trained) == 1
    torch.testing.assert_close(a(z, t, ic, between), b(z, t, ic, between))
    for u, out in zip(trained, before):
        torch.testing.assert_close(a(z, t, ic, u.reshape(1)), out, atol=1e-5, rtol=1e-4)  # sin 2pi u is ~1e-7 there


@torch.no_grad()
def test_phi_axis_is_periodic():
    """With circular padding, rolling the spectrum and the condition along phi rolls the output
    (exactly at the shift of the coarsest grid, 8 bins for 16 -> 2)."""
    net = _net()
    z, t, ic, label = _inputs(1)
    out = net(z, t, ic, label)
    shifted = net(z.roll(8, -1), t, ic.roll(8, -1), label)
    torch.testing.assert_close(shifted, out.roll(8, -1), atol=1e-5, rtol=1e-4)


def test_forward_builds_no_tensor_from_host_data(monkeypatch):
    """On CUDA a tensor made from Python numbers inside forward is a host-to-device copy, which cannot be captured
    in the CUDA graph of `hicgen spectra` (it once broke every CUDA-graph run: the label frequencies)."""
    net = _net()
    z, t, ic, label = _inputs()

    def refuse(*args, **kwargs):
        raise AssertionError("forward built a tensor from host data")

    monkeypatch.setattr(torch, "tensor", refuse)
    monkeypatch.setattr(torch, "as_tensor", refuse)
    assert torch.isfinite(net(z, t, ic, label)).all()


def test_periodic_convolution_pads_phi_circularly_and_pt_with_zeros():
    net = _net()
    conv = net.conv_in
    x = torch.randn(2, conv.conv.in_channels, 16, 16)
    padded = torch.nn.functional.pad(torch.cat([x[..., -1:], x, x[..., :1]], dim=-1), (0, 0, 1, 1))
    expected = torch.nn.functional.conv2d(padded, conv.conv.weight, conv.conv.bias)
    torch.testing.assert_close(conv(x), expected)


def test_channels_last_network_keeps_its_layout_and_output():
    net = _net()
    z, t, ic, label = _inputs()
    with torch.no_grad():
        expected = net(z, t, ic, label)
        conv = net.conv_in
        x = torch.randn(2, conv.conv.in_channels, 16, 16).contiguous(memory_format=torch.channels_last)
        net.to(memory_format=torch.channels_last)
        seen = []
        conv.conv.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
        conv(x)
        assert seen[0].is_contiguous(memory_format=torch.channels_last)  # the circular pad kept the layout
        torch.testing.assert_close(net(z, t, ic, label), expected, rtol=1e-4, atol=1e-5)
