"""Shared test fixtures: the shipped sample MIDI, edge-case fixtures, and the optional shared corpora."""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_MIDI = REPO / "adversarial_midibert" / "sample_midi"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The real corpora beside the checkout (read-only in CI); tests that need them skip on a user's machine.
SHARED_DATA = Path(os.environ.get("ADVERSARIAL_MIDIBERT_SHARED_DATA", REPO.parent / "shared" / "data"))

# The Hub modules live at the repository root; make them importable without an install too.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# `accelerate launch` as two CPU processes on one machine (gloo, one thread each: a 2-core machine): a real
# data-parallel run. `--cpu` alone would start ONE process; `--multi_gpu` without CPU mode, two separate trainings.
ACCELERATE = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
needs_accelerate = pytest.mark.skipif(not Path(ACCELERATE).exists(), reason="the accelerate command is not installed")


def two_cpu_processes(script: str) -> tuple[list[str], dict]:
    """The command prefix and environment that launch `script` (e.g. "train/pretrain.py") as two CPU processes."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", script], env

# Hypothesis keeps its example database (and caches) in `.hypothesis/` of the working directory: the repository.
# Keep it in the temporary folder instead; a fixed name there still replays earlier failures on the next run.
HYPOTHESIS_HOME = Path(tempfile.gettempdir()) / "adversarial-midibert-hypothesis"
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(HYPOTHESIS_HOME))
try:
    from hypothesis import settings as _hypothesis_settings
    from hypothesis.database import DirectoryBasedExampleDatabase
except ImportError:  # hypothesis is a test extra; only the fuzz tests need it
    pass
else:
    _hypothesis_settings.register_profile(
        "adversarial-midibert", database=DirectoryBasedExampleDatabase(HYPOTHESIS_HOME / "examples"))
    _hypothesis_settings.load_profile("adversarial-midibert")


def load_module(path: Path, name: str):
    """Import a script or fixture generator that is not a package module (e.g. `fixtures/make_fixtures.py`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_files(folder: str | None = None) -> list[Path]:
    """The shipped sample MIDI files (all, or one sub-folder: pop909, emopia, giantmidi_eval), sorted."""
    root = SAMPLE_MIDI / folder if folder else SAMPLE_MIDI
    return sorted(root.rglob("*.mid"))


# The longest POP909 song of the sample (851 notes, three tracks), for tests that need several windows of one song.
LONG_SONG = SAMPLE_MIDI / "pop909" / "755.mid"


def tiny_config(**overrides):
    """A very small model config for unit tests of the network (fields as the tiny preset, narrower)."""
    from configuration_adversarial_midibert import AdversarialMidiBertConfig

    fields = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  attribute_embedding_size=8, masker_hidden_size=16, max_position_embeddings=64,
                  pooling_attention_size=8, classifier_hidden_size=16)
    return AdversarialMidiBertConfig.from_preset("tiny", **{**fields, **overrides})


def window_batch(config, lengths, total=None, seed=0):
    """BOS, random regular notes, EOS, then PAD rows (the tokenizer + collator layout): `(ids, attention_mask)`."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    total = total or max(lengths) + 2
    ids = torch.tensor(config.pad_token_ids).repeat(len(lengths), total, 1)
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for b, n in enumerate(lengths):
        notes = torch.stack([torch.randint(0, size, (n,), generator=generator) for size in config.attribute_vocab_sizes], -1)
        ids[b, 0] = torch.tensor(config.bos_token_ids)
        ids[b, 1:n + 1] = notes
        ids[b, n + 1] = torch.tensor(config.eos_token_ids)
        mask[b, : n + 2] = 1
    return ids, mask


@pytest.fixture(scope="session")
def sample_midi_dir() -> Path:
    return SAMPLE_MIDI


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared corpora not found at {SHARED_DATA}")
    return SHARED_DATA
