"""The test suite writes nothing into the repository (issue 14): hypothesis' example database and caches live in
the temporary folder, not in `.hypothesis/` of the checkout."""
from conftest import REPO


def test_hypothesis_database_and_storage_are_outside_the_repository():
    from hypothesis import settings
    from hypothesis.configuration import storage_directory

    database = settings().database
    assert not str(getattr(database, "path", "")).startswith(str(REPO))
    assert not str(storage_directory("examples", intent_to_write=False).path).startswith(str(REPO))
