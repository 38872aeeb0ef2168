"""The freeze book: packed bits per song, the SPEC step-6 update rule, frozen notes in a batch, save/load."""
import numpy as np
import pytest
import torch

from adversarial_midibert.pretraining.freeze_book import FreezeBook


def test_bits_are_packed_and_songs_do_not_overlap():
    # Odd song lengths put song boundaries inside bytes: a write to one song must not touch its neighbours.
    book = FreezeBook(["a", "b", "c"], [3, 13, 8])
    assert book.bits.nbytes == (3 + 13 + 8 + 7) // 8
    rng = np.random.default_rng(0)
    truth = {row: rng.random(n) < 0.5 for row, n in enumerate([3, 13, 8])}
    for row in (1, 0, 2):
        book.set_frozen(row, truth[row])
    for row in range(3):
        np.testing.assert_array_equal(book.frozen(row), truth[row])
    np.testing.assert_array_equal(book.frozen(1, 4, 9), truth[1][4:9])
    assert book.frozen_fraction() == pytest.approx(sum(t.sum() for t in truth.values()) / 24)


def test_update_ranks_all_notes_so_a_consistent_masker_does_not_grow_the_frozen_set():
    book = FreezeBook(["song"], [10])
    scores = {0: np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.05])}
    book.update(scores, freeze_percent=30, unfreeze_percent=0, seed=0)
    assert book.frozen(0).nonzero()[0].tolist() == [0, 2, 4]
    # The same scores again: the frozen notes are still the top 30 %, so nothing new is frozen.
    book.update(scores, freeze_percent=30, unfreeze_percent=0, seed=0)
    assert book.frozen(0).nonzero()[0].tolist() == [0, 2, 4]
    # A masker that changed its mind adds its new top 30 % to the frozen set.
    book.update({0: -scores[0]}, freeze_percent=30, unfreeze_percent=0, seed=0)
    assert book.frozen(0).nonzero()[0].tolist() == [0, 1, 2, 3, 4, 9]
    assert book.num_updates == 3


def test_consistent_ranking_holds_a_times_one_minus_b_frozen():
    # a = 30, b = 10 on a hand-built song of 1,000 notes whose ranking never changes: after the first update
    # 300 are frozen and 30 released (270); every later update freezes the top 300 again (back to 300, adding
    # the released ones that are in the top) and releases 30: the set stays at a * (1 - b) = 27 %, never grows.
    book = FreezeBook(["song"], [1000])
    scores = {0: np.linspace(1.0, 0.0, 1000)}
    fractions = []
    for _ in range(12):
        book.update(scores, freeze_percent=30, unfreeze_percent=10, seed=5)
        fractions.append(book.frozen_fraction())
    assert fractions == [0.27] * 12
    # Only notes of the masker's top 30 % are ever frozen.
    assert not book.frozen(0)[300:].any()


def test_changing_rankings_grow_the_set_but_stay_bounded_by_release():
    # Fresh random scores at every update (a masker with no opinion): the frozen set grows, but each update
    # releases b % of it, so it settles well below saturation (about a / (a + b(1 - a)) of the notes).
    book = FreezeBook(["song"], [2000])
    rng = np.random.default_rng(0)
    for _ in range(30):
        book.update({0: rng.random(2000)}, freeze_percent=30, unfreeze_percent=10, seed=1)
    assert 0.6 < book.frozen_fraction() < 0.85


@pytest.mark.parametrize("momentum", [0.0, 0.7])
def test_consistent_ranking_freezes_the_same_notes_with_or_without_rank_momentum(momentum):
    book = FreezeBook(["song"], [1000])
    scores = {0: np.linspace(1.0, 0.0, 1000)}
    for _ in range(6):
        book.update(scores, freeze_percent=30, unfreeze_percent=10, seed=5, momentum=momentum)
        assert book.frozen_fraction() == 0.27
    assert not book.frozen(0)[300:].any()


def test_rank_momentum_keeps_a_masker_that_changes_its_mind_from_freezing_a_new_set_each_time():
    # Scores that drift (each update only 20 % correlated with the last, like the head-only masker while it
    # learns) freeze about 0.7 of the song by the paper's rule; smoothed ranks keep the ranking, and the
    # frozen set, closer to the last update's.
    def frozen_after(momentum):
        rng = np.random.default_rng(0)
        book, z = FreezeBook(["song"], [4000]), rng.standard_normal(4000)
        for _ in range(15):
            book.update({0: z}, freeze_percent=30, unfreeze_percent=10, seed=2, momentum=momentum)
            z = 0.2 * z + np.sqrt(1 - 0.2**2) * rng.standard_normal(4000)
        return book.frozen_fraction()

    assert frozen_after(0.0) > 0.65
    assert frozen_after(0.7) < 0.6


def test_rank_momentum_blends_the_previous_ranks_by_hand():
    # 5 notes ranked 0..255 in steps of 63.75 (stored rounded: 255, 191, 128, 64, 0). Update 1 ranks note 0
    # highest; update 2 (reversed scores) alone would rank note 4 highest, but with m = 0.75 note 0 keeps
    # 0.75 * 255 + 0.25 * 0 = 191.25 -> 191 and note 4 gets 0.25 * 255 = 63.75 -> 64: the top note (a = 20 %)
    # is still note 0.
    book = FreezeBook(["s"], [5])
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    book.update({0: scores}, freeze_percent=20, unfreeze_percent=0, seed=0, momentum=0.75)
    assert book.ranks.tolist() == [255, 191, 128, 64, 0]
    book.update({0: -scores}, freeze_percent=20, unfreeze_percent=0, seed=0, momentum=0.75)
    assert book.ranks.tolist() == [191, 159, 128, 96, 64]
    assert book.frozen(0).nonzero()[0].tolist() == [0]
    with pytest.raises(ValueError, match="momentum"):
        book.update({0: scores}, freeze_percent=20, unfreeze_percent=0, seed=0, momentum=1.0)


def test_ranks_survive_save_load_and_subset(tmp_path):
    book = FreezeBook(["a", "b"], [7, 9])
    rng = np.random.default_rng(3)
    book.update({0: rng.random(7), 1: rng.random(9)}, freeze_percent=30, unfreeze_percent=10, seed=0, momentum=0.5)
    book.save(tmp_path / "book.npz")
    again = FreezeBook(["b", "a"], [9, 7])  # another order: remapped by song id
    again.load_state_dict(np.load(tmp_path / "book.npz"))
    np.testing.assert_array_equal(again.ranks[:9], book.ranks[7:])
    np.testing.assert_array_equal(again.ranks[9:], book.ranks[:7])
    assert FreezeBook.load(tmp_path / "book.npz").digest() == book.digest()
    part = book.subset(["b"])
    np.testing.assert_array_equal(part.ranks, book.ranks[7:])
    # The next update continues from the saved ranks: the same bits as the book that never stopped.
    scores = {0: rng.random(7), 1: rng.random(9)}
    resumed = FreezeBook.load(tmp_path / "book.npz")
    for b in (book, resumed):
        b.update(scores, freeze_percent=30, unfreeze_percent=10, seed=0, momentum=0.5)
    assert resumed.digest() == book.digest()


def test_update_unfreezes_percent_of_frozen_at_random_and_is_seeded():
    scores = {0: np.arange(20, dtype=float), 1: np.arange(10, dtype=float)[::-1]}
    books = []
    for seed in (3, 3, 4):
        book = FreezeBook(["x", "y"], [20, 10])
        book.update(scores, freeze_percent=50, unfreeze_percent=20, seed=seed)
        books.append(book)
    # Song x: top 10 of 20 frozen (notes 10..19), then round(20 % of 10) = 2 of them unfrozen.
    frozen_x = books[0].frozen(0)
    assert frozen_x.sum() == 8 and not frozen_x[:10].any()
    # Song y: notes 0..4 score highest; 5 frozen, 1 unfrozen.
    frozen_y = books[0].frozen(1)
    assert frozen_y.sum() == 4 and not frozen_y[5:].any()
    assert books[0].digest() == books[1].digest()
    assert any(not np.array_equal(books[0].frozen(r), books[2].frozen(r)) for r in (0, 1))


def test_update_rejects_wrong_score_length():
    book = FreezeBook(["s"], [5])
    with pytest.raises(ValueError, match="5 notes"):
        book.update({0: np.zeros(4)}, 30, 10, seed=0)


def test_selectable_mask_reads_the_window_of_each_sequence():
    book = FreezeBook(["s0", "s1"], [12, 6])
    bits0 = np.zeros(12, dtype=bool)
    bits0[[5, 6, 11]] = True
    bits1 = np.zeros(6, dtype=bool)
    bits1[[0, 3]] = True
    book.set_frozen(0, bits0)
    book.set_frozen(1, bits1)
    # Three windows: song 0 notes 4..8, song 1 notes 0..3 (padded), song 0 notes 8..11 (overlaps the first).
    real = torch.zeros(3, 7, dtype=torch.bool)
    real[0, 1:6] = True
    real[1, 1:5] = True
    real[2, 1:5] = True
    rows = torch.tensor([0, 1, 0])
    starts = torch.tensor([4, 0, 8])
    selectable = book.selectable_mask(rows, starts, real)
    expected = real.clone()
    expected[0, 2] = expected[0, 3] = False  # song 0 notes 5 and 6
    expected[1, 1] = expected[1, 4] = False  # song 1 notes 0 and 3 (the second sequence of the batch)
    expected[2, 4] = False  # song 0 note 11
    assert torch.equal(selectable, expected)
    # A song the book does not know (row -1): nothing frozen.
    assert torch.equal(book.selectable_mask(torch.tensor([-1, 1, 0]), starts, real)[0], real[0])


def test_save_load_round_trip_and_remap_by_song_id(tmp_path):
    book = FreezeBook(["a", "b", "c"], [9, 4, 17])
    book.update({r: np.random.default_rng(r).random(n) for r, n in enumerate([9, 4, 17])}, 40, 10, seed=1)
    path = tmp_path / "book.npz"
    book.save(path)
    loaded = FreezeBook.load(path)
    assert loaded.digest() == book.digest()
    # The same songs in another order: bits follow the ids.
    other = FreezeBook(["c", "a", "b"], [17, 9, 4])
    with np.load(path) as state:
        other.load_state_dict(state)
    for song_id in ("a", "b", "c"):
        np.testing.assert_array_equal(other.frozen(other.row_of[song_id]), book.frozen(book.row_of[song_id]))
    assert other.num_updates == 1


def test_load_refuses_other_songs_or_note_counts(tmp_path):
    book = FreezeBook(["a", "b"], [9, 4])
    path = tmp_path / "book.npz"
    book.save(path)
    with np.load(path) as state:
        with pytest.raises(ValueError, match="lacks song 'z'"):
            FreezeBook(["a", "z"], [9, 4]).load_state_dict(state)
        with pytest.raises(ValueError, match="5 notes here"):
            FreezeBook(["a", "b"], [9, 5]).load_state_dict(state)


def test_subset_keeps_bits_of_the_chosen_songs():
    book = FreezeBook(["a", "b", "c"], [5, 6, 7])
    book.set_frozen(2, np.array([1, 0, 1, 0, 1, 1, 0], dtype=bool))
    part = book.subset(["c", "a"])
    assert part.song_ids == ["c", "a"]
    np.testing.assert_array_equal(part.frozen(0), book.frozen(2))
    assert not part.frozen(1).any()
