"""Fine-tuning tasks: note labelers, folder-per-class sources, seeded group splits, the paper's recipes."""
import shutil
from dataclasses import replace

import numpy as np
import pytest
from conftest import sample_files

from adversarial_midibert.data.dataset import MidiSource
from adversarial_midibert.data.tasks import (
    IGNORE_INDEX,
    InstrumentLabeler,
    TrackNameLabeler,
    VelocityBinLabeler,
    labeler_from_dict,
    load_recipe,
    make_task,
    parse_track_mapping,
    sequence_label_names,
    sources_from_class_folders,
    split_sources,
    subsample_groups,
)
from tokenization_octuple import OctupleSong, OctupleTokenizer


def fake_song(velocities=(), programs=(), track_names=("x",), track_index=None):
    n = max(len(velocities), len(programs))
    ids = np.zeros((n, 8), dtype=np.int64)
    if len(velocities):
        ids[:, 5] = np.asarray(velocities) // 4
    if len(programs):
        ids[:, 2] = programs
    track_index = np.zeros(n, np.int32) if track_index is None else np.asarray(track_index, np.int32)
    return OctupleSong(ids=ids, track_index=track_index, note_index=np.arange(n, dtype=np.int32),
                       track_names=list(track_names), track_programs=[0] * len(track_names),
                       track_is_drum=[False] * len(track_names), name="fake")


def test_velocity_bins_are_exact_from_velocity_ids():
    velocities = np.arange(128)
    expected = np.searchsorted([32, 48, 64, 80, 96], velocities, side="right")
    got = VelocityBinLabeler()(fake_song(velocities=velocities))
    assert got.tolist() == expected.tolist()
    assert [int(got[v]) for v in (31, 32, 95, 96, 127)] == [0, 1, 4, 5, 5]


def test_velocity_bins_need_multiples_of_four():
    with pytest.raises(ValueError, match="multiples of 4"):
        VelocityBinLabeler(edges=(30, 48), labels=("a", "b", "c"))
    with pytest.raises(ValueError, match="labels"):
        VelocityBinLabeler(edges=(32,), labels=("a",))


def test_representative_velocity_lies_in_its_bin():
    labeler = VelocityBinLabeler()
    reps = labeler.representative_velocities()
    assert labeler(fake_song(velocities=reps)).tolist() == list(range(6))


@pytest.mark.parametrize("path", sample_files("pop909"), ids=lambda p: p.name)
def test_pop909_track_labels_follow_track_names(path):
    song = OctupleTokenizer().encode_song(path)
    labels = TrackNameLabeler.pop909()(song, None)
    expected = {"MELODY": 0, "BRIDGE": 1, "PIANO": 2}
    for t, name in enumerate(song.track_names):
        assert set(labels[song.track_index == t].tolist()) <= {expected[name.strip().upper()]}
    assert (labels != IGNORE_INDEX).all()


def test_track_labels_unknown_tracks_ignored_or_defaulted():
    song = fake_song(velocities=[64, 64, 64], track_names=[" melody ", "Strings"], track_index=[0, 1, 1])
    assert TrackNameLabeler({"MELODY": "lead"})(song).tolist() == [0, IGNORE_INDEX, IGNORE_INDEX]
    labeler = TrackNameLabeler({"MELODY": "lead"}, default="other")
    assert labeler.labels == ("lead", "other") and labeler(song).tolist() == [0, 1, 1]


def test_instrument_families_and_drums():
    labeler = InstrumentLabeler()
    got = labeler(fake_song(programs=[0, 7, 8, 33, 128]))
    assert [labeler.labels[i] for i in got] == ["piano", "piano", "chromatic_percussion", "bass", "drums"]


@pytest.mark.parametrize("labeler", [TrackNameLabeler.pop909(), InstrumentLabeler(), VelocityBinLabeler(edges=(64,), labels=("soft", "loud"))],
                         ids=lambda l: l.kind)
def test_labeler_round_trips_through_config_dict(labeler):
    rebuilt = labeler_from_dict(labeler.to_dict())
    assert type(rebuilt) is type(labeler) and rebuilt.to_dict() == labeler.to_dict()


def test_parse_track_mapping():
    assert parse_track_mapping("MELODY=melody, PIANO=acc") == {"MELODY": "melody", "PIANO": "acc"}
    with pytest.raises(ValueError, match="NAME=label"):
        parse_track_mapping("MELODY")


@pytest.fixture
def class_folders(tmp_path):
    """The shipped GiantMIDI excerpts as an unseen folder-per-class set: composer = file-name prefix."""
    for path in sample_files("giantmidi_eval"):
        folder = tmp_path / "set" / path.name.split("_")[0].lower()
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
    return tmp_path / "set"


def test_sources_from_class_folders(class_folders):
    sources = sources_from_class_folders(class_folders)
    assert sequence_label_names(sources) == ["bach", "chopin", "debussy", "schubert"]
    assert all(s.song_id.startswith(s.label + "/") for s in sources)


def test_class_folders_reject_loose_files_and_single_class(class_folders, tmp_path):
    shutil.copy(sample_files("emopia")[0], class_folders / "loose.mid")
    with pytest.raises(ValueError, match="outside a class folder"):
        sources_from_class_folders(class_folders)
    single = tmp_path / "single" / "only"
    single.mkdir(parents=True)
    shutil.copy(sample_files("emopia")[0], single)
    with pytest.raises(ValueError, match="two class folders"):
        sources_from_class_folders(tmp_path / "single")


def labelled(n_per_class, classes="abc", songs_per_group=2):
    return [MidiSource(song_id=f"{c}{i}", path=f"{c}{i}.mid", label=c, group=f"{c}-{i // songs_per_group}")
            for c in classes for i in range(n_per_class)]


def test_split_keeps_groups_together_and_is_seeded():
    sources = labelled(20)
    train, dev = split_sources(sources, 0.2, seed=1)
    assert {s.group for s in train}.isdisjoint({s.group for s in dev})
    assert len(train) + len(dev) == len(sources)
    assert {s.label for s in dev} == {"a", "b", "c"}
    again = split_sources(list(reversed(sources)), 0.2, seed=1)[1]
    assert sorted(s.song_id for s in again) == sorted(s.song_id for s in dev)
    other = split_sources(sources, 0.2, seed=2)[1]
    assert sorted(s.song_id for s in other) != sorted(s.song_id for s in dev)


def test_split_small_class_keeps_one_group_each_side_and_new_class_moves_nothing():
    sources = labelled(4, classes="ab", songs_per_group=2)  # 2 groups per class
    train, dev = split_sources(sources, 0.1, seed=0)
    for label in "ab":
        assert {s.label for s in train}.issuperset(label) and {s.label for s in dev}.issuperset(label)
    grown = split_sources(sources + labelled(6, classes="z"), 0.1, seed=0)[1]
    assert [s.song_id for s in grown if s.label != "z"] == [s.song_id for s in dev]


def test_subsample_groups_is_seeded_and_keeps_whole_groups():
    sources = labelled(10)
    kept = subsample_groups(sources, 4, seed=3)
    assert len({s.group for s in kept}) == 4 and len(kept) == 8
    assert kept == subsample_groups(sources, 4, seed=3)


def test_make_task_sequence_and_note_tasks(class_folders):
    task = make_task("sequence", sources_from_class_folders(class_folders), eval_fraction=0.5, seed=0)
    assert task.level == "sequence" and task.labels == ["bach", "chopin", "debussy", "schubert"]
    assert task.config_updates()["label2id"] == {"bach": 0, "chopin": 1, "debussy": 2, "schubert": 3}
    velocity = make_task("velocity", [replace(s, label=None) for s in task.train + task.eval])
    assert velocity.level == "token" and velocity.hidden_attributes == ["velocity"]
    assert velocity.config_updates()["note_labeler"]["edges"] == [32, 48, 64, 80, 96]
    with pytest.raises(ValueError, match="unknown note task"):
        make_task("harmony", task.train)


def test_recipes_on_shared_corpora(shared_data):
    emotion = load_recipe("emotion", shared_data)
    assert emotion.labels == ["Q1", "Q2", "Q3", "Q4"]
    assert {s.group for s in emotion.train}.isdisjoint({s.group for s in emotion.eval})
    composer = load_recipe("composer", shared_data)
    assert len(composer.labels) == 8 and {s.label for s in composer.eval} == set(composer.labels)
    assert {s.group for s in composer.train}.isdisjoint({s.group for s in composer.eval})
    velocity = load_recipe("velocity", shared_data)
    assert velocity.hidden_attributes == ["velocity"] and velocity.level == "token"
    assert not any(s.song_id.endswith("midi_score.mid") for s in velocity.train + velocity.eval)
    assert any(s.song_id.startswith("asap/") for s in velocity.eval)
    melody = load_recipe("melody", shared_data)
    assert len(melody.train) == 693 and len(melody.eval) == 86
    for name in ("composer_music21", "composer_pianist8"):
        task = load_recipe(name, shared_data)
        assert {s.song_id for s in task.train}.isdisjoint({s.song_id for s in task.eval})


def test_class_folder_groups_from_sub_folders_and_from_a_name_regex(tmp_path):
    clips = sample_files("emopia")
    for path in clips:  # <quadrant>/<song>/<clip>.mid: one group per song sub-folder
        folder = tmp_path / "nested" / path.name[:2] / path.stem.rsplit("_", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
        (tmp_path / "flat" / path.name[:2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / "flat" / path.name[:2] / path.name)
    nested = {s.song_id: s.group for s in sources_from_class_folders(tmp_path / "nested")}
    assert nested["Q1/Q1_1Qc15G0ZHIg/Q1_1Qc15G0ZHIg_1.mid"] == nested["Q1/Q1_1Qc15G0ZHIg/Q1_1Qc15G0ZHIg_2.mid"] \
        == "Q1/Q1_1Qc15G0ZHIg"
    flat = {s.song_id: s.group for s in sources_from_class_folders(tmp_path / "flat")}
    assert set(flat.values()) == {None}  # each file its own group
    regex = {s.song_id: s.group for s in sources_from_class_folders(tmp_path / "flat", group_regex=r"^(.+)_\d+$")}
    assert regex["Q1/Q1_1Qc15G0ZHIg_1.mid"] == regex["Q1/Q1_1Qc15G0ZHIg_2.mid"] == "Q1/Q1_1Qc15G0ZHIg"
    assert len(set(regex.values())) == 5  # 8 clips: three songs with two clips each, two with one
    task = make_task("sequence", sources_from_class_folders(tmp_path / "flat", group_regex=r"^(.+)_\d+$"),
                     eval_fraction=0.5, seed=0)
    assert {s.group for s in task.train}.isdisjoint({s.group for s in task.eval})


def test_labels_a_classifier_cannot_learn_are_errors():
    train = [MidiSource(f"a{i}", path=f"a{i}.mid", label="a") for i in range(3)]
    with pytest.raises(ValueError, match="at least two labels in the training data, found only 'a'"):
        make_task("sequence", train, eval_sources=[MidiSource("b0", path="b0.mid", label="a")])
    train.append(MidiSource("b1", path="b1.mid", label="b"))
    with pytest.raises(ValueError, match=r"\['c'\] occur only in the dev data \(e\.g\. c0\)"):
        make_task("sequence", train, eval_sources=[MidiSource("c0", path="c0.mid", label="c")])


def test_track_role_tasks_hide_meter_and_tempo(tmp_path):
    import symusic
    import torch
    from conftest import tiny_config

    from modeling_adversarial_midibert import AdversarialMidiBertForTokenClassification

    melody = make_task("melody", [MidiSource(p.name, path=str(p)) for p in sample_files("pop909")])
    assert melody.hidden_attributes == ["time_signature", "tempo"]
    assert make_task("velocity", melody.train).hidden_attributes == ["velocity"]
    # POP909's spurious 1/4 event: the same song without it differs in the time-signature ids, which the model
    # never sees (it still shifts bar/position ids: the tokenizer reads bars from the meter).
    score = symusic.Score(str(sample_files("pop909")[0]))
    score.time_signatures = symusic.Score(str(sample_files("emopia")[0])).time_signatures.copy()[:0]
    score.dump_midi(str(tmp_path / "no_meter.mid"))
    tokenizer = OctupleTokenizer(max_length=64)
    with_event = tokenizer.encode_song(sample_files("pop909")[0]).ids[:62]
    without = tokenizer.encode_song(tmp_path / "no_meter.mid").ids[:62]
    assert (with_event[:, 6] != without[:, 6]).any()
    config = tiny_config(num_labels=3, hidden_attributes=melody.hidden_attributes)
    model = AdversarialMidiBertForTokenClassification(config).eval()
    ids = torch.as_tensor(tokenizer.window_ids(tokenizer.encode_song(sample_files("pop909")[0]), 0, 62))[None]
    changed = ids.clone()
    changed[0, 1:-1, 6], changed[0, 1:-1, 7] = int(without[0, 6]), 3  # another meter and tempo on every note
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, model(input_ids=changed).logits)
