"""Model-card templates, filled by `adversarial_midibert.model_card` (installed as `adversarial_midibert.model_cards`)."""
