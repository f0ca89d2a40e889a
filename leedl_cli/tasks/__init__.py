"""LightningModules: the objective, metrics and analysis of one kind of experiment."""
