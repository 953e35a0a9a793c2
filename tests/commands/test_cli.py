"""The datagen program: options may come anywhere among a command's key=value overrides, and a word that is
neither an option nor an override is refused by name."""

import pytest

from datagen.cli import build_parser, parse
from pipelines.cli import COMMANDS


def parsed(argv):
    return parse(build_parser(COMMANDS), argv)


def test_overrides_before_and_after_an_option_are_all_taken():
    args = parsed(["run", "configs/demo.yaml", "input.path=X", "--address", "HOST:6379", "output.dir=Y", "seed=3"])
    assert args.recipe == "configs/demo.yaml"
    assert args.address == "HOST:6379"
    assert args.overrides == ["input.path=X", "output.dir=Y", "seed=3"]


def test_option_first_then_overrides():
    args = parsed(["run", "--address", "HOST:6379", "configs/demo.yaml", "input.path=X"])
    assert (args.recipe, args.address, args.overrides) == ("configs/demo.yaml", "HOST:6379", ["input.path=X"])


def test_train_takes_overrides_after_options_too():
    args = parsed(["-v", "train", "configs/train_tiny.yaml", "trainer.max_steps=3"])
    assert args.verbose and args.overrides == ["trainer.max_steps=3"]


def test_unknown_words_are_refused(capsys):
    with pytest.raises(SystemExit):
        parsed(["run", "configs/demo.yaml", "input.path=X", "--adress", "HOST"])
    assert "unrecognized arguments: --adress HOST" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parsed(["validate", "out", "x=1"])  # validate takes no overrides
