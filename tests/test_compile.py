"""`torch.compile` of the relative-position bias and of the models: same numbers as eager, no graph break inside
the bias's custom autograd function.

Compiling on CPU is slow (inductor builds C++: about 60 s for one tiny layer on 2 shared cores), so the backbone
test uses the `aot_eager` backend: dynamo's capture plus AOT autograd's functionalised forward/backward graphs,
which is where a custom `autograd.Function` either traces or breaks. Inductor itself compiles the bias alone.
The `TrainingArguments(torch_compile=True)` path through `AdversarialTrainer` runs in `tests/test_gpu_check.py`.
"""
import shutil

import pytest
import torch
from conftest import tiny_config, window_batch

from configuration_adversarial_midibert import AdversarialMidiBertConfig
from modeling_adversarial_midibert import (
    AdversarialMidiBertForPreTraining,
    AdversarialMidiBertModel,
    AdversarialMidiBertPitchLogits,
    pitch_class_and_octave,
    relative_key_query_bias,
)

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def bias_inputs(length, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(2, 3, length, 8, generator=generator, requires_grad=True) for _ in range(2))
    table = torch.randn(2 * 16 - 1, 8, generator=generator, requires_grad=True)
    weight = torch.randn(2, 3, length, length, generator=generator)
    return q, k, table, weight


def bias_and_grads(function, q, k, table, weight):
    for tensor in (q, k, table):
        tensor.grad = None
    bias = function(q, k, table, 16, 0.5)
    (bias * weight).sum().backward()
    return [bias.detach()] + [tensor.grad.clone() for tensor in (q, k, table)]


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_bias_compiles_whole_and_matches_eager(backend):
    if backend == "inductor" and shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("inductor on CPU needs a C++ compiler")
    # fullgraph=True raises on any graph break, so the custom autograd function is traced, not skipped.
    compiled = torch.compile(relative_key_query_bias, backend=backend, fullgraph=True)
    # aot_eager: a second length recompiles with a symbolic length. Inductor: one length (its C++ build is slow).
    for length in (12, 7) if backend == "aot_eager" else (12,):
        inputs = bias_inputs(length)
        expected = bias_and_grads(relative_key_query_bias, *inputs)
        got = bias_and_grads(compiled, *inputs)
        for name, a, b in zip(("bias", "query grad", "key grad", "table grad"), got, expected):
            torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m, name=name: f"{name} (L={length}): {m}")


def parameter_grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_compiled_backbone_forward_backward_matches_eager():
    # The tiny preset with relative_key_query, dropout off so both runs are deterministic; padding in the batch.
    config = AdversarialMidiBertConfig.from_preset("tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    assert config.position_embedding_type == "relative_key_query"
    torch.manual_seed(0)
    model = AdversarialMidiBertModel(config).train()
    ids, mask = window_batch(config, [30, 18])
    target = torch.randn(2, ids.shape[1], config.hidden_size, generator=torch.Generator().manual_seed(1))

    def run(module):
        model.zero_grad(set_to_none=True)
        hidden = module(input_ids=ids, attention_mask=mask).last_hidden_state
        (hidden * target).sum().backward()
        return hidden.detach(), parameter_grads(model)

    hidden, grads = run(model)
    compiled_hidden, compiled_grads = run(torch.compile(model, backend="aot_eager"))
    torch.testing.assert_close(compiled_hidden, hidden, **TOLERANCE)
    assert compiled_grads.keys() == grads.keys()
    assert any("distance_embedding" in name for name in grads)  # the bias's table is trained
    for name in grads:
        torch.testing.assert_close(compiled_grads[name], grads[name], **TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


def test_compiled_pretraining_step_matches_eager():
    """The whole pre-training forward (clean pass, choice, corruption, recoverer, both losses) through dynamo, graph
    breaks included: same choice, loss and gradients as eager for the same generator. Backend `eager` (dynamo's
    capture and guards, then the captured graphs run as they are): with `aot_eager` this test took 38 s on 2 loaded
    cores, and the backbone test above already runs AOT autograd through every layer this model has."""
    config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, masking="adversarial")
    torch.manual_seed(0)
    model = AdversarialMidiBertForPreTraining(config).train()
    ids, mask = window_batch(config, [40, 25])

    def run(module):
        model.zero_grad(set_to_none=True)
        out = module(input_ids=ids, attention_mask=mask, generator=torch.Generator().manual_seed(3))
        out.loss.backward()
        return out.loss.detach(), out.chosen_mask, parameter_grads(model)

    loss, chosen, grads = run(model)
    compiled_loss, compiled_chosen, compiled_grads = run(torch.compile(model, backend="eager"))
    assert torch.equal(compiled_chosen, chosen)
    torch.testing.assert_close(compiled_loss, loss, **TOLERANCE)
    assert compiled_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(compiled_grads[name], grads[name], **TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")


def test_inductor_compiles_the_shared_pitch_logits_with_their_backward():
    """The recoverer's pitch classifier under pitch-class sharing (the `small` preset's): inductor on CPU once built
    its gather backward with a bounds check that failed on every training step (`index out of bounds: 0 <= tmp < 12`,
    torch 2.13), so `--torch_compile` broke pre-training of `small`. Same logits and gradients as eager, and the
    logits are the three layers' outputs added by pitch class and octave."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("inductor on CPU needs a C++ compiler")
    SUMMED = dict(rtol=1e-4, atol=1e-4)  # the shared rows' gradients sum over many pitches, in another order
    config = tiny_config(pitch_class_sharing=True)
    torch.manual_seed(0)
    head = AdversarialMidiBertPitchLogits(config)
    hidden = torch.randn(37, config.hidden_size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    upstream = torch.randn(37, config.vocab_sizes[3], generator=torch.Generator().manual_seed(2))

    def run(module):
        head.zero_grad(set_to_none=True)
        hidden.grad = None
        logits = module(hidden)
        (logits * upstream).sum().backward()
        return logits.detach(), hidden.grad.clone(), parameter_grads(head)

    logits, hidden_grad, grads = run(head)
    pitch_class, octave = pitch_class_and_octave(torch.arange(config.vocab_sizes[3]))
    added = head.dense(hidden) + head.pitch_class(hidden)[:, pitch_class] + head.octave(hidden)[:, octave]
    torch.testing.assert_close(logits, added.detach(), **SUMMED)
    compiled_logits, compiled_hidden_grad, compiled_grads = run(torch.compile(head, backend="inductor"))
    torch.testing.assert_close(compiled_logits, logits, **SUMMED)
    torch.testing.assert_close(compiled_hidden_grad, hidden_grad, **SUMMED)
    assert compiled_grads.keys() == grads.keys() == {f"{layer}.{p}" for layer in ("dense", "pitch_class", "octave")
                                                      for p in ("weight", "bias")}
    for name in grads:
        torch.testing.assert_close(compiled_grads[name], grads[name], **SUMMED, msg=lambda m, n=name: f"{n}: {m}")
