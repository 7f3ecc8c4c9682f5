import json

import pytest
from umr.bench.flops import EncoderShape, flops_for_lengths, flops_per_sequence

from umr.errors import InputValueError, ManifestError


def test_textbook_formula_when_ffn_is_four_times_hidden():
    shape = EncoderShape(layers=12, hidden=768, intermediate=3072)
    n, h = 128, 768
    assert flops_per_sequence(shape, n) == 12 * (24 * n * h * h + 4 * n * n * h)


def test_minilm_hand_computed_value():
    # 6 layers, h=384, i=1536, L=10: 6 * (24*10*384^2 + 4*10^2*384) = 213_258_240
    shape = EncoderShape(layers=6, hidden=384, intermediate=1536)
    assert flops_per_sequence(shape, 10) == 213_258_240
    assert flops_per_sequence(shape, 0) == 0


def test_lengths_are_counted_unpadded():
    shape = EncoderShape(layers=1, hidden=4, intermediate=8)
    total = flops_for_lengths(shape, [1, 3])
    assert total == flops_per_sequence(shape, 1) + flops_per_sequence(shape, 3)
    assert total < 2 * flops_per_sequence(shape, 3)  # padding to 3 would cost more


def test_from_config_reads_hf_fields(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps({"num_hidden_layers": 6, "hidden_size": 384, "intermediate_size": 1536})
    )
    assert EncoderShape.from_config(path) == EncoderShape(6, 384, 1536)


def test_from_config_names_the_bad_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 384}))
    with pytest.raises(ManifestError, match=r"config\.json"):
        EncoderShape.from_config(path)


def test_bad_shape_and_length_are_rejected():
    with pytest.raises(InputValueError, match="hidden"):
        EncoderShape(layers=1, hidden=0, intermediate=4)
    with pytest.raises(InputValueError, match="-1"):
        flops_per_sequence(EncoderShape(1, 4, 8), -1)
