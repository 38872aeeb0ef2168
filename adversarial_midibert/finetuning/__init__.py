"""Fine-tuning on labelled MIDI (`train/finetune.py` is the script; `run` is its body).

- `arguments`: `FinetuneArguments` and the `TrainingArguments` defaults;
- `recipe`: the learning rate, warm-up, epochs, best-checkpoint selection and class weights fitted to the model
  and the data;
- `inputs`: the task and its split from the flags, the model and its tokenizer, the window datasets;
- `trainer`: `FinetuneTrainer` (transposition, class-weighted loss, progress bar);
- `report`: the model beside the baselines, the warnings, `finetune_results.json` and the model-card facts;
- `run`: `main` / `cli`, what `accelerate launch train/finetune.py` executes.
"""
