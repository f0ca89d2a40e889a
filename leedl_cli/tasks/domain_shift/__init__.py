"""Chapter 6 beyond DANN, the parts `task=dann`'s modes add (leedl_cli.tasks.dann): the entropy of the label
predictor on target images (away from the boundary), test-time training with a rotation-prediction head, and
fine-tuning on a few labelled target images with its test-accuracy curve."""
