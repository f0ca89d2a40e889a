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
