"""Learning-rate schedules (warmup, decay) built on torch.optim.lr_scheduler.LambdaLR."""
