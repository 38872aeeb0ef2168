"""Training and inference library of Adversarial-MidiBERT (installed as ``adversarial_midibert``).

The Hub code (configuration, modeling, tokenizer) lives in the three top-level modules that ``save_pretrained``
copies beside the weights; this package holds what only training and inference need.
"""
