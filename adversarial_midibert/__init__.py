"""Training and inference library of Adversarial-MidiBERT.

The Hub code (configuration, modeling, tokenizer, pipelines) lives in the top-level modules that `save_pretrained`
copies beside the weights; this package holds what only training and inference need, one sub-package per stage:

- `data`: MIDI sources, labelled tasks and the paper's recipes, window datasets, the collator, tokenizer checks;
- `pretraining`: arguments, `AdversarialTrainer`, the freeze book, masker metrics and report, streaming shards;
- `finetuning`: arguments, the fitted recipe, the run's inputs and report, `FinetuneTrainer`;
- `inference`: `MidiPredictor` (classify, melody, velocity, embeddings);
- `evaluation`: the shipped metric, the majority and note-statistics baselines, the representation benchmark;
- `hub`: model cards, complete checkpoint pushes, the converter of the authors' weights.

`presets` reads the package data (`configs/*.yaml`, `sample_midi/`); `precision` reads `--bf16` on a machine without
a GPU as bf16 on the CPU; `cli` is the `adversarial-midibert` command.
"""
