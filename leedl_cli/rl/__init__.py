"""Reinforcement learning's data side (LeeDL ch. 7): rollouts a policy collects for itself, evaluation episodes.
Imports no task and no model: the policy is a function s_t -> a_t handed in by the task."""
