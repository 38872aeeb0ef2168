"""Config sizes are bounded (issue 14): an absurd size in a config.json or a preset is a one-line `ValueError`
naming the field, raised before any allocation, not an out-of-memory crash minutes later."""
import json
import time

import pytest

from configuration_adversarial_midibert import MAX_PARAMETERS, SIZE_LIMITS, AdversarialMidiBertConfig


@pytest.mark.parametrize("field, value", [("num_hidden_layers", 10**6), ("hidden_size", 10**6),
                                          ("intermediate_size", 10**9), ("max_position_embeddings", 10**7),
                                          ("attribute_embedding_size", 10**6), ("masker_hidden_size", 10**8),
                                          ("classifier_hidden_size", 10**8), ("pooling_attention_heads", 10**5)])
def test_oversized_field_is_named(field, value):
    with pytest.raises(ValueError, match=f"`{field}` is {value}, more than the largest supported"):
        AdversarialMidiBertConfig(**{field: value, **({"num_attention_heads": 1} if field == "hidden_size" else {})})


def test_oversized_vocabulary_and_parameter_count():
    with pytest.raises(ValueError, match="`attribute_vocab_sizes` holds 1000000000"):
        AdversarialMidiBertConfig(attribute_vocab_sizes=[10**9, 128, 129, 256, 128, 32, 254, 49])
    # Each size within its bound, together far too many parameters (about 8e11).
    sizes = dict(num_hidden_layers=256, hidden_size=16384, num_attention_heads=16, intermediate_size=65536)
    assert all(value <= SIZE_LIMITS[name] for name, value in sizes.items())
    with pytest.raises(ValueError, match="`num_hidden_layers` .* imply about 8.25e\\+11 parameters"):
        AdversarialMidiBertConfig(**sizes)


def test_presets_are_far_below_the_bounds():
    assert AdversarialMidiBertConfig.from_preset("paper").approximate_num_parameters() < MAX_PARAMETERS / 50


def test_hostile_config_json_fails_fast_before_any_weight_exists(tmp_path):
    from modeling_adversarial_midibert import AdversarialMidiBertForPreTraining

    AdversarialMidiBertConfig.from_preset("tiny").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 10**6}))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="`num_hidden_layers` is 1000000"):
        AdversarialMidiBertForPreTraining.from_pretrained(tmp_path)
    assert time.perf_counter() - start < 10  # before: allocating layers until memory ran out (2 GB after 140 s)
