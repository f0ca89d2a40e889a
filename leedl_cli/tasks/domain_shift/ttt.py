"""Test-time training (Sun et al., ICML 2020), chapter 6.2: before classifying a batch of test images, take a few
gradient steps on *their* self-supervised loss (which rotation of each image is which), moving the shared feature
extractor G_f towards the test images; then classify them with G_y on the adapted features.

Standard variant: G_f's weights (and buffers) are put back after every batch, so each batch is adapted from the
trained model alone. Online variant (`online=True`): the adaptation carries over to the next batch. Only G_f is
updated (plain SGD); the rotation head G_r and the label predictor G_y stay as trained.
"""
from __future__ import annotations

import torch

from leedl_cli.tasks.domain_shift.objectives import rotation_loss


class TestTimeTraining:
    """`adapt_and_classify(model, x)`: class logits of x after `steps` SGD steps (lr) on x's rotation loss, in
    chunks of `batch_size` images."""

    def __init__(self, steps: int = 3, lr: float = 0.005, batch_size: int = 16, online: bool = False) -> None:
        self.steps, self.lr, self.batch_size, self.online = int(steps), float(lr), int(batch_size), bool(online)

    @staticmethod
    def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in module.state_dict().items()}

    def adapt(self, model, x: torch.Tensor) -> None:
        """`steps` SGD steps of G_f on the rotation loss of x (all 4 rotations of every image)."""
        params = [p for p in model.features.parameters() if p.requires_grad]
        if not params or not self.steps:
            return
        opt = torch.optim.SGD(params, lr=self.lr)
        for _ in range(self.steps):
            opt.zero_grad(set_to_none=True)
            loss, _ = rotation_loss(model, x)
            loss.backward()
            opt.step()
        for p in model.parameters():
            p.grad = None

    def adapt_and_classify(self, model, x: torch.Tensor, domain: int = 0) -> torch.Tensor:
        """Class logits [N, K] of x, each chunk classified after adapting G_f to it (and G_f restored after it,
        unless online). Runs with gradients whatever the caller's mode (Lightning tests in inference mode)."""
        out = []
        with torch.inference_mode(False), torch.enable_grad():
            x = x.clone()   # a tensor made in inference mode cannot take part in autograd
            saved = None if self.online else self.snapshot(model.features)
            for chunk in x.split(self.batch_size):
                self.adapt(model, chunk)
                with torch.no_grad():
                    out.append(model.label_predictor(model.features_of(chunk, domain)))
                if saved is not None:
                    model.features.load_state_dict(saved)
        return torch.cat(out)
