"""Data: where MIDI comes from and how it becomes model input.

- `dataset`: `MidiSource` (folders, manifests, `datasets` columns), the song-level split, window datasets with a
  cache, and the build report that counts skipped files;
- `tasks`: labels (class folders, note labelers from track names, instruments, velocity bins), the
  stratified split and the paper's four recipes on the shared corpora;
- `collator`: `OctupleDataCollator`, padding windows and note labels into batches;
- `compatibility`: checks that a tokenizer, a model and a run's windows fit together, made before a run starts.
"""
