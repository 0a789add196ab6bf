"""The scoring server and the adapters that hand rewardlab rewards to other trainers."""
