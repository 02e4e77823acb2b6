"""Zoo networks: counts against published figures and hand-computed literals."""

from __future__ import annotations

import pytest

from archmodel.network.schema import NetworkError
from archmodel.zoo import ZOO, get_network, list_networks, load_network


def test_resnet32_joshi2020_weight_count_is_published_figure():
    # Joshi et al., Nat. Commun. 11, 2473 (2020): ResNet-32 (16/28/56) has 361,722 weights
    # (conv + FC weights + FC bias).
    net = get_network("resnet32-joshi2020")
    assert net.weight_count + net["fc"].bias_count == 361_722
    # every flattened layer fits 512 rows (the reason for the 16/28/56 widths)
    assert max(layer.matrix_shape[0] for layer in net.matrix_layers()) == 504
    assert len(net.matrix_layers()) == 31 + 2 + 1  # 31 3x3 convs, 2 projections, FC


def test_resnet_and_vgg_mac_counts():
    # ResNet-18: 1.814 GMACs (torchvision / He et al. 2016 "1.8 GFLOPs"); VGG-16: 15.47 GMACs.
    assert get_network("resnet18").mac_count == 1_814_073_344
    assert get_network("vgg16").weight_count == 138_344_128
    assert get_network("vgg16").mac_count == 15_470_264_320
    # ResNet-32 (16/32/64) with projection shortcuts: 0.46 M weights (He et al.: 0.46 M params)
    assert get_network("resnet32").weight_count == 464_432


def test_mlp_and_lstm_matrix_products():
    mlp = get_network("mlp")
    assert mlp.weight_count == 784 * 256 + 256 * 128 + 128 * 10
    lstm = get_network("lstm")
    g1, g2 = lstm["lstm1_gates"], lstm["lstm2_gates"]
    assert g1.matrix_shape == (128 + 256, 4 * 256) and g1.mvm_count == 32
    assert g2.matrix_shape == (256 + 256, 4 * 256) and g2.mvm_count == 32
    assert lstm.output_shape == (10,)


def test_every_zoo_network_builds():
    names = list_networks()
    for name in ZOO:
        assert name in names
        net = get_network(name)
        assert net.matrix_layers()


def test_unknown_network_lists_zoo_names():
    with pytest.raises(NetworkError) as exc:
        load_network("resnet33")
    msg = str(exc.value)
    assert "resnet33" in msg and "resnet32-joshi2020" in msg and "\n" not in msg


def test_missing_file():
    with pytest.raises(NetworkError, match="no such file"):
        load_network("nope/missing.onnx")


def test_yaml_network_loads(tmp_path):
    p = tmp_path / "n.yaml"
    p.write_text("name: t\ninput_shape: [3, 8, 8]\nlayers:\n"
                 "  - {name: c, op: conv, out_channels: 4, kernel_size: 3}\n")
    net = load_network(p)
    assert net.weight_count == 4 * 3 * 9
