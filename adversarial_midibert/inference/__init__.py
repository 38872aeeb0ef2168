"""Inference on MIDI files: `MidiPredictor` (in `predictor`) classifies pieces, labels notes, writes melody and
velocity MIDI, and embeds pieces or notes; `pipeline` opens the transformers pipelines of a checkpoint, a shipped
short name included. The `adversarial-midibert` command (`adversarial_midibert.cli`) and the
representation benchmark call it.
"""
from adversarial_midibert.inference.pipelines import pipeline
from adversarial_midibert.inference.predictor import MidiPredictor

__all__ = ["MidiPredictor", "pipeline"]
