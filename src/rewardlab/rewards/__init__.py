"""Pure functions of scores: transforms before a policy optimises a reward, and aggregation of
several reward outputs into one. Below the models, which score with them."""
