"""Shared test fixtures: the shipped sample MIDI, edge-case fixtures, and the optional shared corpora."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_MIDI = REPO / "train" / "sample_midi"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The real corpora beside the checkout (read-only in CI); tests that need them skip on a user's machine.
SHARED_DATA = Path(os.environ.get("ADVERSARIAL_MIDIBERT_SHARED_DATA", REPO.parent / "shared" / "data"))

# The Hub modules live at the repository root; make them importable without an install too.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def sample_files(folder: str | None = None) -> list[Path]:
    """The shipped sample MIDI files (all, or one sub-folder: pop909, emopia, giantmidi_eval), sorted."""
    root = SAMPLE_MIDI / folder if folder else SAMPLE_MIDI
    return sorted(root.rglob("*.mid"))


@pytest.fixture(scope="session")
def sample_midi_dir() -> Path:
    return SAMPLE_MIDI


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared corpora not found at {SHARED_DATA}")
    return SHARED_DATA
