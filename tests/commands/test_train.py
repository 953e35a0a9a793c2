"""`datagen train` is a subcommand; a recipe error exits 2 naming the key, before any work starts."""

from datagen.cli import build_parser, main


def test_train_subcommand_is_registered():
    args = build_parser().parse_args(["train", "configs/train_tiny.yaml", "trainer.max_steps=3"])
    assert args.command == "train" and args.overrides == ["trainer.max_steps=3"]


def test_bad_key_exits_2_and_names_it(capsys, tmp_path):
    assert main(["train", "configs/train_tiny.yaml", "trainer.max_step=3", f"output.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "trainer.max_step: unknown key" in err and "max_steps" in err
    assert not any(tmp_path.iterdir())  # nothing written
