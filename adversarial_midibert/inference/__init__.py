"""Inference on MIDI files: `MidiPredictor` (in `predictor`) classifies pieces, labels notes, writes melody and
velocity MIDI, and embeds pieces or notes. The `adversarial-midibert` command (`adversarial_midibert.cli`) and the
representation benchmark call it.
"""
from adversarial_midibert.inference.predictor import MidiPredictor

__all__ = ["MidiPredictor"]
