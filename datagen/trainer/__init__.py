"""The matching trainer: stream datagen shards (CU/LCU) into an ACE-style DiT trained with flow matching.
Entry point: `datagen train RECIPE key=value ...` (datagen/commands/train.py) -> datagen.trainer.loop.train."""
