"""Commands that run datagen's pipelines and operators; the core's own commands live in datagen/commands."""
