"""The one strict config builder: a typo in a parameters file is an error naming the key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from zeroshot_audio.config import build_strict, unknown_keys


@dataclass(frozen=True)
class _Example:
    tau: float = 1.0
    gamma: float = 0.5


def test_known_keys_build_the_dataclass_and_none_gives_the_defaults() -> None:
    assert build_strict(_Example, {"tau": 2.0}, "model") == _Example(tau=2.0)
    assert build_strict(_Example, None, "model") == _Example()


def test_an_unknown_key_is_an_error_naming_it_its_block_and_the_known_keys() -> None:
    assert unknown_keys(_Example, {"tua": 1, "gamma": 0}) == ["tua"]
    with pytest.raises(ValueError, match=r"unknown model parameter\(s\) \['tua'\]") as err:
        build_strict(_Example, {"tua": 0.5}, "model")
    assert "['gamma', 'tau']" in str(err.value)
