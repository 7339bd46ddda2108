import pytest

from matsight._duration import parse_duration
from matsight._errors import InputError
from matsight.fuse.train import parse_duration as fuse_parse
from matsight.restore.config import parse_duration as restore_parse


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("45", 45),
        (45, 45),
        (2.5, 2.5),
        ("90s", 90),
        ("20m", 1200),
        ("20min", 1200),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        (" 1H30M ", 5400),
        ("0.5h", 1800),
        ("1m30s", 90),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["twenty minutes", "1h30", "20x", "m", "", "20m5"])
def test_unreadable_durations_name_the_fix(text):
    with pytest.raises(InputError, match=r"duration .*20m, 1h30m, 90s"):
        parse_duration(text)


@pytest.mark.parametrize("value", [0, "0", "0m", -5])
def test_budget_must_be_positive(value):
    with pytest.raises(InputError, match="must be positive"):
        parse_duration(value)


def test_one_parser_for_every_command():
    assert fuse_parse is parse_duration is restore_parse
    assert parse_duration(None) is None
