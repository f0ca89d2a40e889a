"""The policy-gradient algorithms of LeeDL ch. 7, one module each: `reinforce` (versions 0-3.5), `actor_critic`
(version 4), `ppo`. Each turns a rollout into the losses of its update(s); `tasks.policy_gradient` runs them."""
