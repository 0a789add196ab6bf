"""A training run short of a field names the fix ``train`` accepts (issue 27, bug 4): the run key
``data.columns=...``, not ``eval``'s and ``data check``'s ``--columns`` option, which ``train`` lacks."""

from __future__ import annotations

import pytest

from rewardlab.data.records import PreferencePair
from rewardlab.objectives import get_objective
from rewardlab.training.batching import check_fields


def test_missing_ratings_name_the_train_key() -> None:
    pairs = [PreferencePair("q", "a", "b", source="d.jsonl:1")]
    with pytest.raises(ValueError) as raised:
        check_fields(get_objective("regression"), {}, pairs, "training")
    message = str(raised.value)
    assert "data.columns=chosen_rating=FIELD,rejected_rating=FIELD" in message
    assert "--columns" not in message
