"""The advantage of every policy-gradient version against returns computed by hand (LeeDL ch. 7)."""
from __future__ import annotations

import pytest
import torch

from leedl_cli.tasks import returns

# one environment, two episodes: rewards 1, 2, 3 | 4, 5  (done after step 2 and after step 4)
R = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]])
DONE = torch.tensor([[False], [False], [True], [False], [True]])


def col(t: torch.Tensor) -> list[float]:
    return t[:, 0].tolist()


def test_v0_is_the_immediate_reward():
    assert col(returns.advantage_v0(R)) == [1, 2, 3, 4, 5]


def test_v1_is_the_cumulated_reward_to_the_end_of_the_episode():
    assert col(returns.advantage_v1(R, DONE)) == [6, 5, 3, 9, 5]


def test_v2_discounts_later_rewards():
    g = 0.5
    expected = [1 + g * 2 + g * g * 3, 2 + g * 3, 3, 4 + g * 5, 5]
    assert col(returns.advantage_v2(R, DONE, g)) == pytest.approx(expected)


def test_v3_subtracts_the_baseline():
    assert col(returns.advantage_v3(R, DONE, 1.0, b=4.0)) == [2, 1, -1, 5, 1]


def test_v3_5_subtracts_the_critic():
    G = returns.advantage_v1(R, DONE)
    V = torch.tensor([[1.0], [1.0], [1.0], [2.0], [2.0]])
    assert col(returns.advantage_v3_5(G, V)) == [5, 4, 2, 7, 3]


def test_v4_td_error_and_no_bootstrap_after_termination():
    r = torch.tensor([1.0, 1.0])
    v = torch.tensor([2.0, 3.0])
    v_next = torch.tensor([4.0, 100.0])
    terminated = torch.tensor([False, True])
    assert returns.td_error(r, v, v_next, terminated, 0.9).tolist() == pytest.approx([1 + 0.9 * 4 - 2, 1 - 3])


def test_unfinished_episode_bootstraps_from_last_value():
    r = torch.tensor([[1.0], [1.0]])
    done = torch.tensor([[False], [False]])
    assert col(returns.reward_to_go(r, done, 0.5, last=torch.tensor([8.0]))) == pytest.approx([1 + 0.5 + 0.25 * 8, 1 + 4])


def test_gae_with_lambda_zero_is_version_4_and_sums_td_errors_otherwise():
    delta = torch.tensor([[1.0], [2.0], [3.0]])
    done = torch.tensor([[False], [True], [False]])
    assert torch.equal(returns.gae(delta, done, 0.9, 0.0), delta)
    assert col(returns.gae(delta, done, 1.0, 0.5)) == pytest.approx([1 + 0.5 * 2, 2, 3])


def test_parallel_environments_are_independent():
    r = torch.tensor([[1.0, 10.0], [1.0, 10.0]])
    done = torch.tensor([[True, False], [True, True]])
    assert returns.advantage_v1(r, done).tolist() == [[1, 20], [1, 10]]


# ---- the algorithms of leedl_cli/tasks/pg on a hand-made rollout ----------------------------------------------
from leedl_cli.rl.rollout import Rollout  # noqa: E402
from leedl_cli.tasks.pg.actor_critic import AdvantageActorCritic  # noqa: E402
from leedl_cli.tasks.pg.common import Settings, pg_losses  # noqa: E402
from leedl_cli.tasks.pg.reinforce import WithBaseline, WithCritic  # noqa: E402


class KnownValues(torch.nn.Module):
    """A policy with uniform logits over 2 actions and V(s) = s[0] (the first observation)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def actor(self, s):
        return torch.zeros(len(s), 2) + self.w

    def critic(self, s):
        return s[:, 0] + self.w

    def forward(self, s):
        return self.actor(s), self.critic(s)


def rollout(r, done, terminated=None, valid=None, v=None, v_next=None) -> Rollout:
    T, N = r.shape
    v = torch.zeros(T, N) if v is None else v
    v_next = torch.zeros(T, N) if v_next is None else v_next
    return Rollout(s=v[..., None], a=torch.zeros(T, N, dtype=torch.long), r=r,
                   terminated=done if terminated is None else terminated, done=done,
                   s_next=v_next[..., None], valid=torch.ones(T, N, dtype=torch.bool) if valid is None else valid)


def test_v3_baseline_is_a_running_mean_of_the_returns():
    algo = WithBaseline(Settings(gamma=1.0, baseline_momentum=0.5))
    first = algo.advantage(rollout(R, DONE))            # G = 6, 5, 3, 9, 5: b = mean = 5.6
    assert algo.b == pytest.approx(5.6)
    assert col(first) == pytest.approx([0.4, -0.6, -2.6, 3.4, -0.6])
    algo.advantage(rollout(R * 0, DONE))                # mean G = 0: b = 0.5 * 5.6 + 0.5 * 0
    assert algo.b == pytest.approx(2.8)


def test_v3_5_critic_targets_mc_return_or_td_bootstrap():
    r = torch.tensor([[1.0], [1.0]])
    done = torch.tensor([[False], [True]])
    v, v_next = torch.tensor([[0.5], [2.0]]), torch.tensor([[2.0], [7.0]])
    b = rollout(r, done, v=v, v_next=v_next)
    mc = next(WithCritic(Settings(gamma=1.0, critic="mc")).updates(KnownValues(), b))
    td = next(WithCritic(Settings(gamma=1.0, critic="td")).updates(KnownValues(), b))
    # mc: V -> G = (2, 1); td: V -> r + V(s') = (3, 1) (no bootstrap after the termination)
    assert mc.critic.item() == pytest.approx(((0.5 - 2) ** 2 + (2 - 1) ** 2) / 2)
    assert td.critic.item() == pytest.approx(((0.5 - 3) ** 2 + (2 - 1) ** 2) / 2)


def test_v4_advantage_is_the_td_error():
    r = torch.tensor([[1.0, 0.0]])
    done = torch.tensor([[False, True]])
    b = rollout(r, done, v=torch.tensor([[2.0, 1.0]]), v_next=torch.tensor([[4.0, 9.0]]))
    losses = next(AdvantageActorCritic(Settings(gamma=0.5)).updates(KnownValues(), b))
    A = torch.tensor([1 + 0.5 * 4 - 2, 0 - 1.0])        # r + gamma V(s') - V(s); V(s') = 0 after termination
    e = torch.log(torch.tensor(2.0))                    # -log pi(a|s) of a uniform policy over 2 actions
    assert losses.policy.item() == pytest.approx(float((A * e).mean()))
    assert losses.critic.item() == pytest.approx(float((A ** 2).mean()))


def test_steps_after_an_episode_ended_do_not_count():
    r = torch.tensor([[1.0], [100.0]])
    valid = torch.tensor([[True], [False]])
    b = rollout(r, torch.tensor([[True], [True]]), valid=valid)
    losses = pg_losses(torch.zeros(2, 2), b, A=r, normalize=False)
    assert losses.policy.item() == pytest.approx(float(torch.log(torch.tensor(2.0))))
