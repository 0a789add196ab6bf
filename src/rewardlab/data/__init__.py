"""Preference data: read files in many formats into validated ``PreferencePair`` records."""

from rewardlab.data.loading import DEFAULT_DATASET, LoadedPreferences, default_dataset_path, load_preferences
from rewardlab.data.prompts import transcript_to_messages
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, Message, PreferencePair, Prompt
from rewardlab.data.schema import ColumnMap, parse_pair
from rewardlab.data.split import Splits, split_pairs
from rewardlab.data.summary import summarize

__all__ = [
    "DEFAULT_DATASET",
    "ColumnMap",
    "DataError",
    "LoadedPreferences",
    "Message",
    "PreferencePair",
    "Prompt",
    "Splits",
    "default_dataset_path",
    "iter_rows",
    "load_preferences",
    "parse_pair",
    "split_pairs",
    "summarize",
    "transcript_to_messages",
]
