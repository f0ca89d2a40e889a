"""Go played by programs (AlphaGo's reinforcement-learning step, ch. 7.2.2): many boards moved at once by one
forward pass of a policy, the rules of `leedl_cli.data.go_board` in batched form, Tromp-Taylor area scoring and
SGF records of the games. Imports no task and no model: a policy is a function from feature planes to logits."""
